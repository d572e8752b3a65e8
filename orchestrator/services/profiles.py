"""Profiles: the built-in ones (read-only) and custom ones stored in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..core.profiles import BUILTIN_PROFILES, Profile, Zone
from ..storage.database import Database
from ..storage.tables import ProfileRow
from .audit import AuditLog
from .clock import utc_now
from .errors import Conflict, NotFound
from .validation import validated


class ProfileStore:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def all(self) -> list[tuple[Profile, bool]]:
        """Every profile with whether it is built in."""
        with self.db.read() as session:
            rows = session.execute(select(ProfileRow).order_by(ProfileRow.name)).scalars().all()
        builtin = [(p, True) for p in BUILTIN_PROFILES.values()]
        return builtin + [(Profile.model_validate(r.definition), False) for r in rows]

    def get(self, name: str) -> Profile:
        if name in BUILTIN_PROFILES:
            return BUILTIN_PROFILES[name]
        with self.db.read() as session:
            row = session.get(ProfileRow, name)
        if row is None:
            raise NotFound(f"no profile {name!r}")
        return Profile.model_validate(row.definition)

    def create(self, data: dict[str, Any], actor: str) -> Profile:
        profile = validated(Profile, {"zone": Zone.CUSTOM.value, **data}, "profile")
        if profile.name in BUILTIN_PROFILES:
            raise Conflict(f"{profile.name!r} is a built-in profile; choose another name")
        definition = profile.model_dump(mode="json")
        with self.db.write() as session:
            if session.get(ProfileRow, profile.name) is not None:
                raise Conflict(f"profile {profile.name!r} exists; change it with PATCH")
            now = utc_now()
            session.add(ProfileRow(name=profile.name, definition=definition, created_at=now, updated_at=now))
            self.audit.append(session, actor, "profile_created", {"after": definition})
        return profile

    def update(self, name: str, changes: dict[str, Any], actor: str) -> Profile:
        if name in BUILTIN_PROFILES:
            raise Conflict(f"{name!r} is a built-in profile and cannot be changed; create a custom one")
        if "name" in changes and changes["name"] != name:
            raise Conflict("a profile cannot be renamed; create a new one")
        with self.db.write() as session:
            row = session.get(ProfileRow, name)
            if row is None:
                raise NotFound(f"no profile {name!r}")
            before = row.definition
            profile = validated(Profile, {**before, **changes}, "profile")
            row.definition, row.updated_at = profile.model_dump(mode="json"), utc_now()
            self.audit.append(session, actor, "profile_updated", {"before": before, "after": row.definition})
        return profile
