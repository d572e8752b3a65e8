"""API keys: random secrets shown once, stored only as SHA-256, each with one role.

A key reads `cv_<id>_<secret>`: the id finds the row, the secret is compared in constant time. The
secrets are 256-bit random, so a plain SHA-256 (no slow hash) is enough to make a stolen table useless.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import select

from ..storage.database import Database
from ..storage.tables import ApiKeyRow
from .audit import AuditLog
from .clock import utc_now

PREFIX = "cv"


class Role(str, Enum):
    ADMIN = "admin"
    INTEGRATOR = "integrator"  # registers and changes cameras and profiles
    VIEWER = "viewer"  # reads masked outputs only
    AUDITOR = "auditor"  # reads the audit log and the reports
    ML_ENGINEER = "ml_engineer"  # manages model versions


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def create(self, role: Role, label: str = "", actor: str = "cli") -> str:
        """A new key; the returned text is the only copy of the secret."""
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.db.write() as session:
            session.add(
                ApiKeyRow(
                    id=key_id,
                    secret_sha256=_sha256(secret),
                    role=role.value,
                    label=label,
                    created_at=utc_now(),
                    revoked_at=None,
                )
            )
            self.audit.append(
                session, actor, "key_created", {"key_id": key_id, "role": role.value, "label": label}
            )
        return f"{PREFIX}_{key_id}_{secret}"

    def authenticate(self, presented: str) -> Principal | None:
        prefix, _, rest = presented.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != PREFIX or not key_id or not secret:
            return None
        with self.db.read() as session:
            row = session.execute(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_sha256, _sha256(secret)):
            return None
        return Principal(row.id, Role(row.role))
