"""Server settings (pydantic-settings): built by the entry point, never at import.

Everything the server keeps lives under one data folder: the SQLite database (unless a PostgreSQL URL is
given), the secret key, HLS segments.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .inference.triton_options import (
    CUDA_SHARED_MEMORY_NEEDS,
    SharedMemory,
    cuda_shared_memory_installed,
    parse_inference,
)

SECRET_FILE = "secret.key"
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "cityveil", "test"}
MIN_SECRET_CHARS = 32


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYVEIL_", extra="forbid")

    data_dir: Path = Path("cityveil-data")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL, e.g. postgresql+psycopg://...; default: SQLite in data_dir"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="keys the audit chain and encrypts source credentials; default: data_dir file",
    )
    summary_interval_s: float = Field(default=60.0, gt=0, le=3600, description="processing summaries")
    inference: str = Field(
        default="embedded",
        description="embedded (ONNX Runtime in each worker) or triton://HOST:PORT (a Triton server; "
        "?shared_memory=none|system|cuda, default system when local)",
    )

    model_repository: Path | None = Field(
        default=None, description="the Triton model repository; default: triton_models/ of the checkout"
    )
    model_recall_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="how much lower a new model version's masked recall on the canary set may be",
    )

    @field_validator("inference")
    @classmethod
    def _inference_backend(cls, value: str) -> str:
        options = parse_inference(value)  # a clear error at start, not in every worker
        cuda = options is not None and options.shared_memory_kind is SharedMemory.CUDA
        if cuda and not cuda_shared_memory_installed():
            raise ValueError(CUDA_SHARED_MEMORY_NEEDS)
        return value

    @field_validator("secret_key")
    @classmethod
    def _real_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value()
        if text.lower() in PLACEHOLDER_SECRETS or len(text) < MIN_SECRET_CHARS:
            raise ValueError(
                f"CITYVEIL_SECRET_KEY must be a random string of at least {MIN_SECRET_CHARS} characters"
            )
        return value

    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'cityveil.db').resolve()}"

    def secret(self) -> bytes:
        """The configured secret, or one made on first start and kept (owner-only) in the data folder."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / SECRET_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting together must not each write a different key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_bytes().strip()
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
        return path.read_bytes().strip()
