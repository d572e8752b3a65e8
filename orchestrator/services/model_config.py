"""The config changes an upload may bring (`X-Cityveil-Config: {"parameters": {KEY: NUMBER}}`), checked
strictly: only the tunable parameters, each a number within its range; anything else is refused."""

from __future__ import annotations

import json
import math
from typing import Any

from ..inference.detectors import RELIABLE_MAX_PX, RELIABLE_MIN_PX
from ..inference.version_config import TUNABLE
from .errors import Invalid

HEADER = "X-Cityveil-Config"


def decode(raw: str | None) -> Any:
    """The header's JSON (None without the header)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise Invalid(f'{HEADER} must be JSON, like {{"parameters": {{"{RELIABLE_MIN_PX}": 16}}}}') from None


def parameter_changes(config: Any) -> dict[str, str]:
    """The parameters a version changes, as the config writes them (strings)."""
    if config is None:
        return {}
    if not isinstance(config, dict) or set(config) - {"parameters"}:
        raise Invalid(f'{HEADER} may only change "parameters" (an object of {", ".join(TUNABLE)})')
    parameters = config.get("parameters", {})
    if not isinstance(parameters, dict):
        raise Invalid(f'{HEADER}: "parameters" must be an object of {", ".join(TUNABLE)}')
    changes = {}
    for key, value in parameters.items():
        if key not in TUNABLE:
            raise Invalid(f"parameter {key!r} cannot change per version (these can: {', '.join(TUNABLE)})")
        low, high = TUNABLE[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not low <= value <= high:
            raise Invalid(f"parameter {key} must be a number from {low:g} to {high:g}, not {value!r}")
        changes[key] = f"{value:g}"
    return changes


def version_values(base: dict[str, str], changes: dict[str, str]) -> dict[str, str]:
    """A version's values: the model's own, with the version's changes; the smallest reliable object
    must stay below the largest."""
    values = {**base, **changes}
    smallest, largest = values.get(RELIABLE_MIN_PX), values.get(RELIABLE_MAX_PX)
    if smallest is not None and largest is not None and float(smallest) >= float(largest):
        raise Invalid(
            f"parameter {RELIABLE_MIN_PX} ({smallest}) must stay below {RELIABLE_MAX_PX} ({largest})"
        )
    return values
