"""`cityveil`: the command line. Bad input ends with exit code 2 and one sentence on stderr."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .core.camera_settings import load_camera_file
from .core.config_files import ConfigError
from .core.masks import MaskStyle
from .core.profiles import DEFAULT_PROFILE, Profile, resolve_profile
from .inference.fetch import FetchError
from .inference.onnx_backend import DeviceError, RuntimeOptions
from .inference.repository import RepositoryError
from .logging_setup import configure_logging

EXIT_USAGE = 2


class UsageError(Exception):
    """Reported as one sentence with exit code 2."""


def _profile(args: argparse.Namespace) -> Profile:
    profile = resolve_profile(args.profile)
    if args.style:
        profile = profile.model_copy(update={"style": MaskStyle(args.style)})
    return profile


def _runtime(args: argparse.Namespace) -> RuntimeOptions:
    return RuntimeOptions(device=args.device, precision=args.precision)


def _inference(args: argparse.Namespace) -> Any:
    """None (embedded ONNX Runtime) or the Triton backend's options, from --inference."""
    from .inference.triton_options import parse_inference

    try:
        return parse_inference(args.inference)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_anonymize(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .atomic_files import atomic_output
    from .dataplane.batch.images import MediaError
    from .dataplane.batch.job import count_frames, plan_outputs, run_job
    from .dataplane.embedded import EmbeddedEngine

    profile = _profile(args)
    triton = _inference(args)
    camera = load_camera_file(Path(args.camera)) if args.camera else None
    report_file = Path(args.report) if args.report else None
    if report_file is not None:
        try:  # checked before the work, not after it
            report_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot write the report to {report_file}: {exc.strerror}") from None
    try:
        items = plan_outputs([Path(p) for p in args.inputs], Path(args.output), args.image_format)
    except MediaError as exc:
        raise UsageError(str(exc)) from None
    if not items:
        raise UsageError("no image or video files found in the inputs")
    engine = EmbeddedEngine(options=_runtime(args), classes=profile.masked_classes, triton=triton)
    try:
        with tqdm(total=count_frames(items), unit="frame", disable=args.quiet or None) as bar:
            report = run_job(items, engine, profile, camera, bar.update)
    finally:
        engine.close()
    if report_file is not None:
        with atomic_output(report_file) as tmp:
            tmp.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    if report.errors:
        for error in report.errors:
            print(f"cityveil: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate a sample clip and photo with a real face, then anonymize them with the default engine."""
    from PIL import Image

    from .samples import astronaut, write_sample_video

    inputs = Path(args.output) / "input"
    inputs.mkdir(parents=True, exist_ok=True)
    write_sample_video(inputs / "street.mp4", width=1280, height=720, frames=60, fps=15)
    Image.fromarray(astronaut()).save(inputs / "astronaut.png")
    report = Path(args.output) / "report.json"
    argv = ["anonymize", str(inputs), "-o", str(Path(args.output) / "output"), "--report", str(report)]
    code = main(argv + (["--profile", args.profile] if args.profile else []))
    if code == 0:
        print(f"anonymized samples in {Path(args.output) / 'output'}; report: {report}")
    return code


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import EvalError, evaluate_set

    profile = _profile(args).model_copy(update={"style": MaskStyle.SOLID})
    try:
        result = evaluate_set(Path(args.set), args.cls, profile, _runtime(args), limit=args.limit)
    except EvalError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def _settings(args: argparse.Namespace) -> Any:
    """Server settings from the environment (CITYVEIL_*), with --data-dir on top."""
    from pydantic import ValidationError

    from .settings import ServerSettings

    try:
        overrides: dict[str, Any] = {"data_dir": Path(args.data_dir)} if args.data_dir else {}
        return ServerSettings(**overrides)
    except ValidationError as exc:
        raise UsageError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """The orchestrator: HTTP API and outputs, RTSP, worker processes; until SIGTERM or Ctrl-C."""
    from .server import ServeOptions, run_server

    options = ServeOptions(
        host=args.host,
        port=args.port,
        rtsp_port=args.rtsp_port,
        workers=args.workers,
        cameras_file=Path(args.cameras) if args.cameras else None,
    )
    try:
        run_server(_settings(args), options)
    except OSError as exc:  # a port in use, a data folder that cannot be written
        raise UsageError(str(exc)) from None
    return 0


def _store(args: argparse.Namespace) -> tuple[Any, Any]:
    """The database and audit log, for commands that run beside (or without) a server."""
    from .services.audit import AuditLog
    from .storage.database import Database

    settings = _settings(args)
    db = Database(settings.sqlalchemy_url())
    db.migrate()
    return db, AuditLog(settings.secret())


def cmd_keys(args: argparse.Namespace) -> int:
    from .services.keys import KeyStore, Role

    db, audit = _store(args)
    key = KeyStore(db, audit).create(Role(args.role), label=args.label or "", actor="cli")
    print(f"a new {args.role} key; it is shown only this once:", file=sys.stderr)
    print(key)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """export: JSON lines; verify: exit code 0 when intact, 1 with the broken position named."""
    db, audit = _store(args)
    if args.action == "export":
        if not args.file:
            raise UsageError("audit export needs a FILE to write")
        from .atomic_files import write_atomic

        buffer = io.StringIO()
        with db.read() as session:
            count = audit.export(session, buffer)
        write_atomic(Path(args.file), buffer.getvalue().encode())
        print(f"{count} entries written to {args.file}", file=sys.stderr)
        return 0
    if args.verify_file:
        if not Path(args.verify_file).is_file():
            raise UsageError(f"no audit export at {args.verify_file}")
        result = audit.verify_file(Path(args.verify_file))
    else:
        with db.read() as session:
            result = audit.verify(session)
    print(result.sentence())
    return 0 if result.ok else 1


def cmd_models(args: argparse.Namespace) -> int:
    from .inference.fetch import pull_model
    from .inference.repository import ModelRepository

    if args.action in ("add", "activate", "rollback") or args.server:
        return _models_api(args)
    try:
        repository = ModelRepository(Path(args.repository) if args.repository else None)
        # By default the models with weights to pull (the ensemble and its python steps have none).
        names = args.names or [n for n in repository.names() if repository.model(n).source is not None]
        for name in names:
            spec = repository.model(name)
            if args.action == "pull":
                path = pull_model(spec, force=args.force)
                print(f"{name}: {path}")
            else:
                versions = spec.available_versions()
                serving = spec.serving_version() if versions else None
                print(f"{name}\tversions={versions or 'none (run: cityveil models pull)'}\tserving={serving}")
    except (FetchError, RepositoryError) as exc:
        raise UsageError(str(exc)) from None
    return 0


def _parameters(pairs: list[str]) -> dict[str, float | str]:
    """`--param KEY=VALUE`s: numbers as numbers (the server refuses anything else, with its reason)."""
    parameters: dict[str, float | str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise UsageError(f"--param takes KEY=VALUE, not {pair!r}")
        try:
            parameters[key] = float(value)
        except ValueError:
            parameters[key] = value
    return parameters


def _models_api(args: argparse.Namespace) -> int:
    """Model versions through the server's API: the server validates, swaps and audits."""
    import os

    from .models_client import ApiError, ModelsApi, describe

    server = args.server or os.environ.get("CITYVEIL_SERVER")
    key = args.key or os.environ.get("CITYVEIL_API_KEY")
    if not server or not key:
        raise UsageError(
            f"models {args.action} needs --server URL and --key KEY (or CITYVEIL_SERVER, CITYVEIL_API_KEY)"
        )
    expected = {"list": 0, "add": 2, "activate": 2, "rollback": 1}[args.action]
    if len(args.names) != expected:
        usage = {"list": "", "add": " MODEL FILE.onnx", "activate": " MODEL VERSION", "rollback": " MODEL"}
        raise UsageError(f"usage: cityveil models {args.action}{usage[args.action]} --server URL --key KEY")
    api = ModelsApi(server, key)
    try:
        if args.action == "list":
            print("\n".join(describe(m) for m in api.list()))
        elif args.action == "add":
            name, file = args.names
            if not Path(file).is_file():
                raise UsageError(f"no ONNX file at {file}")
            added = api.add(name, Path(file).read_bytes(), _parameters(args.param))
            print(
                f"{name}: version {added['version']} added ({added['validation']['reason']}); not serving yet"
            )
        elif args.action == "activate":
            name, version = args.names
            if not version.isdigit():
                raise UsageError(f"the version must be a number, not {version!r}")
            print(describe(api.activate(name, int(version))))
        else:
            print(describe(api.rollback(args.names[0])))
    except ApiError as exc:
        if 400 <= exc.status < 500 and exc.status not in (401, 403, 409):
            raise UsageError(str(exc)) from None
        print(f"cityveil: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_triton(args: argparse.Namespace) -> int:
    """A CPU Triton server over the model repository, in the foreground until Ctrl-C or SIGTERM."""
    import signal

    from .inference.triton_server import TritonServer, TritonUnavailable

    try:
        server = TritonServer(
            Path(args.repository) if args.repository else None, grpc_port=args.grpc_port, log_file=None
        )
        # SIGTERM as Ctrl-C: leaving the `with` stops the server (its models unloaded, stubs ended).
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with server:
            print(f"Triton serving {server.repository} at triton://{server.url}; Ctrl-C stops it", flush=True)
            status = server.wait()
        print(f"cityveil: tritonserver exited with status {status}", file=sys.stderr)
        return 1
    except TritonUnavailable as exc:
        print(f"cityveil: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityveil", description=__doc__)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)

    def engine_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--profile",
            default=DEFAULT_PROFILE,
            help="residential, public_space, traffic, restricted, or a profile .yaml file",
        )
        p.add_argument("--style", choices=[s.value for s in MaskStyle], help="override the profile's style")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument(
            "--precision",
            default="auto",
            choices=["auto", "fp32"],
            help="auto: int8 models on the CPU (faster), fp32: float models everywhere",
        )

    anonymize = sub.add_parser("anonymize", help="anonymize images, folders and videos")
    anonymize.add_argument("inputs", nargs="+", metavar="INPUT")
    anonymize.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    engine_options(anonymize)
    anonymize.add_argument(
        "--camera",
        metavar="FILE",
        help="YAML with the camera's geometry and privacy_zones (relative polygons)",
    )
    anonymize.add_argument("--image-format", default="png", choices=["png", "jpg"])
    anonymize.add_argument("--report", metavar="FILE", help="write a JSON report of what was masked")
    anonymize.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    anonymize.add_argument(
        "--inference",
        default="embedded",
        metavar="BACKEND",
        help="embedded (ONNX Runtime in process, the default) or "
        "triton://HOST:PORT[?shared_memory=none|system|cuda]",
    )
    anonymize.set_defaults(func=cmd_anonymize)

    demo = sub.add_parser("demo", help="anonymize a generated sample clip and photo (a first run)")
    demo.add_argument("-o", "--output", default="cityveil-demo", metavar="DIR")
    demo.add_argument("--profile", help="profile name or .yaml file (default: public_space)")
    demo.set_defaults(func=cmd_demo)

    evaluate = sub.add_parser("eval", help="masked recall and over-masking on a gt.jsonl set")
    evaluate.add_argument("--set", required=True, metavar="DIR")
    evaluate.add_argument("--cls", default="face", choices=["face", "plate"])
    engine_options(evaluate)
    evaluate.add_argument("--limit", type=int, help="only the first N images")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_eval)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            help="where the server keeps everything (env CITYVEIL_DATA_DIR; default ./cityveil-data)",
        )

    serve = sub.add_parser("serve", help="the orchestrator: camera registry, live anonymization, outputs")
    serve.add_argument(
        "--cameras", metavar="FILE", help="cameras.yaml: cameras to register if not registered yet"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--rtsp-port", type=int, default=8554, help="RTSP output port (0: no RTSP)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the cameras")
    data_dir(serve)
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="API keys")
    keys.add_argument("action", choices=["create"])
    keys.add_argument(
        "--role", required=True, choices=["admin", "integrator", "viewer", "auditor", "ml_engineer"]
    )
    keys.add_argument("--label", help="who or what the key is for")
    data_dir(keys)
    keys.set_defaults(func=cmd_keys)

    audit = sub.add_parser("audit", help="export or verify the tamper-evident audit log")
    audit.add_argument("action", choices=["export", "verify"])
    audit.add_argument("file", nargs="?", metavar="FILE", help="export: the file to write")
    audit.add_argument("--file", dest="verify_file", metavar="FILE", help="verify: an exported file")
    data_dir(audit)
    audit.set_defaults(func=cmd_audit)

    models = sub.add_parser("models", help="the model repository")
    models.add_argument("action", choices=["pull", "list", "add", "activate", "rollback"])
    models.add_argument(
        "names",
        nargs="*",
        help="pull, list: models (default: all); add: MODEL FILE; activate: MODEL VERSION; rollback: MODEL",
    )
    models.add_argument(
        "--server", help="add, activate, rollback (and list): the server's URL (env CITYVEIL_SERVER)"
    )
    models.add_argument("--key", help="an ml_engineer API key (env CITYVEIL_API_KEY)")
    models.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add: a config parameter the version changes (cityveil_reliable_min_px, ..._max_px)",
    )
    models.add_argument("--repository", help="model repository folder (default: triton_models/)")
    models.add_argument("--force", action="store_true", help="download and write again")
    models.set_defaults(func=cmd_models)

    triton = sub.add_parser("triton", help="a CPU Triton server over the model repository (development)")
    triton.add_argument("action", choices=["up"])
    triton.add_argument("--grpc-port", type=int, help="default: a free port")
    triton.add_argument("--repository", help="model repository folder (default: triton_models/)")
    triton.set_defaults(func=cmd_triton)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except (UsageError, ConfigError, DeviceError) as exc:
        print(f"cityveil: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FetchError, RepositoryError) as exc:  # the installation, not the input: exit 1
        print(f"cityveil: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
