"""What a model version may change in its model's config, and the config text with a version's values.

Triton's config is per model, not per version; a version may bring values for a few parameters that the
engine reads (`TUNABLE`). Activation writes the serving version's values (and its version policy) into
every config of the model; validation runs a version with its values before it may serve.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .detectors import RELIABLE_MAX_PX, RELIABLE_MIN_PX
from .pbtxt import parse_pbtxt
from .repository import ModelSpec, RepositoryError

# parameter -> allowed range (network-input pixels, as the detector's traits read them)
TUNABLE: dict[str, tuple[float, float]] = {RELIABLE_MIN_PX: (1.0, 1024.0), RELIABLE_MAX_PX: (16.0, 8192.0)}
POLICY = re.compile(r"^version_policy:.*$", re.MULTILINE)


def tunable_values(spec: ModelSpec) -> dict[str, str]:
    """The tunable parameters as the model's config.pbtxt has them."""
    return {key: value for key in TUNABLE if (value := spec.parameter(key)) is not None}


def with_policy(text: str, version: int) -> str:
    """The config text serving exactly `version`."""
    policy = f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}"
    return POLICY.sub(policy, text) if POLICY.search(text) else f"{text.rstrip()}\n{policy}\n"


def with_values(text: str, values: dict[str, str]) -> str:
    """The config text whose tunable parameters are exactly `values` (absent ones removed); refuses a
    config that writes them in a form other than one `parameters { key: ... }` line each."""
    for key in TUNABLE:
        line = re.compile(rf'^parameters\s*{{\s*key:\s*"{key}"[^\n]*\n?', re.MULTILINE)
        new = _parameter_line(key, values[key]) if key in values else ""
        text, found = line.subn(new, text, count=1)
        if new and not found:
            text = f"{text.rstrip()}\n{new}"
    tunable = [p for p in parse_pbtxt(text).get("parameters", []) if p["key"][0] in TUNABLE]
    written = [(p["key"][0], str(p["value"][0]["string_value"][0])) for p in tunable]
    if sorted(written) != sorted(values.items()):
        raise RepositoryError(f"the config writes {', '.join(TUNABLE)} in a form that cannot be edited")
    return text


def _parameter_line(key: str, value: str) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'


def spec_with_values(spec: ModelSpec, values: dict[str, str]) -> ModelSpec:
    """The model as it would serve with these values (the weights are the version's own)."""
    text = (spec.folder / "config.pbtxt").read_text(encoding="utf-8")
    return replace(spec, config=parse_pbtxt(with_values(text, values)))
