"""The camera registry: cameras stored with encrypted sources, and the data plane told about every change.

A registered camera starts streaming, a deleted one stops, a changed profile or privacy zone applies to the
running stream. Every change is audited in the same transaction, with credentials removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from ..core.camera_settings import CameraConfig
from ..core.profiles import Profile, resolve_profile
from ..core.urls import HIDDEN, redact
from ..storage.database import Database
from ..storage.tables import CameraRow
from .audit import AuditLog
from .clock import utc_now
from .credentials import CredentialVault
from .errors import Conflict, Invalid, NotFound
from .profiles import ProfileStore
from .validation import validated


class StreamControl(Protocol):
    """What the registry needs from the data plane (the worker supervisor in `cityveil serve`)."""

    def start_camera(self, camera: CameraConfig, profile: Profile) -> None: ...

    def update_camera(self, camera: CameraConfig, profile: Profile) -> None: ...

    def stop_camera(self, camera_id: str) -> None: ...


@dataclass(frozen=True)
class StoredCamera:
    config: dict[str, Any]  # the camera's fields, source redacted
    created_at: str
    updated_at: str

    @property
    def id(self) -> str:
        return str(self.config["id"])


def _stored(row: CameraRow) -> StoredCamera:
    return StoredCamera(dict(row.config), row.created_at, row.updated_at)


class CameraRegistry:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        profiles: ProfileStore,
        vault: CredentialVault,
        control: StreamControl,
    ) -> None:
        self.db = db
        self.audit = audit
        self.profiles = profiles
        self.vault = vault
        self.control = control

    def _profile(self, camera: CameraConfig) -> Profile:
        try:
            return self.profiles.get(camera.profile)
        except NotFound:
            raise Invalid(f"camera {camera.id!r}: unknown profile {camera.profile!r}") from None

    def all(self) -> list[StoredCamera]:
        with self.db.read() as session:
            return [_stored(r) for r in session.execute(select(CameraRow).order_by(CameraRow.id)).scalars()]

    def get(self, camera_id: str) -> StoredCamera:
        with self.db.read() as session:
            row = session.get(CameraRow, camera_id)
        if row is None:
            raise NotFound(f"no camera {camera_id!r}")
        return _stored(row)

    def create(self, camera: CameraConfig, actor: str) -> StoredCamera:
        profile = self._profile(camera)
        public = {**camera.model_dump(mode="json"), "source": redact(camera.source)}
        with self.db.write() as session:
            if session.get(CameraRow, camera.id) is not None:
                raise Conflict(f"camera {camera.id!r} is registered; change it with PATCH")
            now = utc_now()
            row = CameraRow(
                id=camera.id,
                config=public,
                source_encrypted=self.vault.seal(camera.source),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            self.audit.append(session, actor, "camera_created", {"after": public}, camera.id)
        self.control.start_camera(camera, profile)
        return _stored(row)

    def update(self, camera_id: str, changes: dict[str, Any], actor: str) -> StoredCamera:
        if changes.get("id", camera_id) != camera_id:
            raise Conflict("a camera's id cannot change; register a new camera")
        with self.db.write() as session:
            row = session.get(CameraRow, camera_id)
            if row is None:
                raise NotFound(f"no camera {camera_id!r}")
            before = dict(row.config)
            source = self.vault.open(row.source_encrypted)
            # The redacted URL that GET returned, sent back unchanged, keeps the stored secret source.
            if "source" in changes and changes["source"] != before["source"]:
                if HIDDEN in str(changes["source"]):
                    raise Invalid(f"camera {camera_id!r}: a new source URL must be given in full")
                source = changes["source"]
            camera = validated(CameraConfig, {**before, **changes, "source": source}, "camera")
            profile = self._profile(camera)
            after = {**camera.model_dump(mode="json"), "source": redact(camera.source)}
            row.config, row.updated_at = after, utc_now()
            row.source_encrypted = self.vault.seal(camera.source)
            self.audit.append(session, actor, "camera_updated", {"before": before, "after": after}, camera_id)
        self.control.update_camera(camera, profile)
        return _stored(row)

    def delete(self, camera_id: str, actor: str) -> None:
        with self.db.write() as session:
            row = session.get(CameraRow, camera_id)
            if row is None:
                raise NotFound(f"no camera {camera_id!r}")
            self.audit.append(session, actor, "camera_deleted", {"before": row.config}, camera_id)
            session.delete(row)
        self.control.stop_camera(camera_id)

    def full_config(self, camera_id: str) -> CameraConfig:
        """The camera with its real source: for the data plane only, never for a response or a log."""
        with self.db.read() as session:
            row = session.get(CameraRow, camera_id)
        if row is None:
            raise NotFound(f"no camera {camera_id!r}")
        return CameraConfig.model_validate({**row.config, "source": self.vault.open(row.source_encrypted)})

    def start_all(self) -> None:
        for stored in self.all():
            camera = self.full_config(stored.id)
            self.control.start_camera(camera, self._profile(camera))

    def apply_profile(self, name: str) -> list[str]:
        """A changed profile reaches every running camera that uses it; returns their ids."""
        using = [c.id for c in self.all() if c.config.get("profile") == name]
        for camera_id in using:
            camera = self.full_config(camera_id)
            self.control.update_camera(camera, self._profile(camera))
        return using

    def seed(self, cameras: list[CameraConfig]) -> list[str]:
        """cameras.yaml as a declarative seed: cameras not yet registered are added (profiles from
        .yaml files become stored custom profiles); registered ones keep what the API made of them."""
        known = {c.id for c in self.all()}
        added = []
        for camera in cameras:
            if camera.id in known:
                continue
            if camera.profile.endswith((".yaml", ".yml")):
                profile = resolve_profile(camera.profile)
                try:
                    self.profiles.get(profile.name)
                except NotFound:
                    self.profiles.create(profile.model_dump(mode="json"), actor="cameras.yaml")
                camera = camera.model_copy(update={"profile": profile.name})
            self.create(camera, actor="cameras.yaml")
            added.append(camera.id)
        return added
