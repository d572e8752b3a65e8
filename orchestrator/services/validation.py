"""Pydantic validation errors as one sentence: the first problem, where it is, and what is wrong."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..core.config_files import first_error
from .errors import Invalid

ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], data: Any, what: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(f"{what}: {first_error(exc, what)}") from None
