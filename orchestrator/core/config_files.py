"""Reading a strictly validated pydantic model from a YAML file, with one-sentence errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one sentence for the user."""


def load_model_file(
    path: Path,
    model: type[ModelT],
    what: str,
    defaults: dict[str, Any] | None = None,
    error: type[ConfigError] = ConfigError,
) -> ModelT:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{what} file {path} must hold a mapping of {what} fields")
    try:
        return model.model_validate({**(defaults or {}), **data})
    except ValidationError as exc:
        raise error(f"{what} file {path}: {first_error(exc, what)}") from exc


def first_error(exc: ValidationError, what: str) -> str:
    """The first problem of a validation as `where: what is wrong` (where defaults to `what`)."""
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or what}: {first['msg']}"
