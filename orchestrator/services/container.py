"""All services of one server, built from its settings (no globals: tests build as many as they like)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from ..inference.repository import ModelRepository
from ..inference.triton_options import parse_inference
from ..settings import ServerSettings
from ..storage.database import Database
from .audit import AuditLog
from .cameras import CameraRegistry, StreamControl
from .credentials import CredentialVault
from .keys import KeyStore
from .models import ModelControl, ModelManager, TritonThenWorkers, WorkerReload
from .profiles import ProfileStore
from .reports import ReportService
from .streams import StreamMonitor


@dataclass
class Services:
    db: Database
    audit: AuditLog
    keys: KeyStore
    profiles: ProfileStore
    cameras: CameraRegistry
    monitor: StreamMonitor
    reports: ReportService
    models: ModelManager

    def database_ok(self) -> bool:
        try:
            with self.db.read() as session:
                session.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not ready"; the reason is logged by the driver
            return False

    def close(self) -> None:
        self.db.close()


def _model_control(settings: ServerSettings, workers: StreamControl) -> ModelControl:
    """Triton's model control (then the workers' reload) when the data plane infers through Triton, else
    the workers' reload alone."""
    triton = parse_inference(settings.inference)
    if triton is None:
        return WorkerReload(workers)
    from ..inference.triton_backend import TritonModelControl  # the `triton` extra

    return TritonThenWorkers(TritonModelControl(triton.url), workers)


def open_services(settings: ServerSettings, control: StreamControl) -> Services:
    """Connect, migrate the schema, and wire the services together."""
    db = Database(settings.sqlalchemy_url())
    db.migrate()
    secret = settings.secret()
    audit = AuditLog(secret)
    profiles = ProfileStore(db, audit)
    return Services(
        db=db,
        audit=audit,
        keys=KeyStore(db, audit),
        profiles=profiles,
        cameras=CameraRegistry(db, audit, profiles, CredentialVault(secret), control),
        monitor=StreamMonitor(db, audit),
        reports=ReportService(db, audit),
        models=ModelManager(
            db,
            audit,
            ModelRepository(settings.model_repository),
            _model_control(settings, control),
            settings.model_recall_tolerance,
        ),
    )
