"""The audit chain: intact logs verify; an edited, deleted, inserted or reordered entry is found and named,
in the database and in an exported file, through the API and the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import delete, update

from orchestrator.cli import main
from orchestrator.services.container import Services
from orchestrator.settings import ServerSettings
from orchestrator.storage.tables import AuditRow


def fill(services: Services, count: int = 6) -> None:
    for n in range(count):
        with services.db.write() as session:
            services.audit.append(session, "tester", "test_event", {"n": n, "text": "é ✓"}, camera_id="cam")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """`cityveil ...` in this process, with the server's settings in its environment."""

    def run(settings: ServerSettings, *args: str) -> Result:
        monkeypatch.setenv("CITYVEIL_DATA_DIR", str(settings.data_dir))
        for name, value in (("DATABASE_URL", settings.database_url), ("SECRET_KEY", settings.secret_key)):
            if value is None:
                monkeypatch.delenv(f"CITYVEIL_{name}", raising=False)
            else:
                monkeypatch.setenv(f"CITYVEIL_{name}", value.get_secret_value())
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_an_intact_log_verifies_everywhere(
    cli, services: Services, settings: ServerSettings, tmp_path: Path
) -> None:
    fill(services)
    with services.db.read() as session:
        assert services.audit.verify(session).ok
    result = cli(settings, "audit", "verify")
    assert result.returncode == 0 and "6 entries verified" in result.stdout, result.stderr
    export = tmp_path / "audit.jsonl"
    assert cli(settings, "audit", "export", str(export)).returncode == 0
    lines = export.read_text().splitlines()
    assert len(lines) == 7 and json.loads(lines[0])["details"]["text"] == "é ✓"
    result = cli(settings, "audit", "verify", "--file", str(export))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("tamper", "position"),
    [
        (lambda s: s.execute(update(AuditRow).where(AuditRow.seq == 3).values(details={"n": 99})), 3),
        (lambda s: s.execute(update(AuditRow).where(AuditRow.seq == 2).values(actor="someone else")), 2),
        (lambda s: s.execute(delete(AuditRow).where(AuditRow.seq == 4)), 4),
        (lambda s: s.execute(delete(AuditRow).where(AuditRow.seq == 6)), 6),  # the newest: the head knows
    ],
    ids=["edited details", "edited actor", "deleted", "deleted last"],
)
def test_tampering_in_the_database_is_found_and_named(
    cli, services: Services, settings: ServerSettings, tamper, position: int
) -> None:
    fill(services)
    with services.db.write() as session:
        tamper(session)
    with services.db.read() as session:
        result = services.audit.verify(session)
    assert not result.ok and result.first_bad_seq == position, result
    verdict = cli(settings, "audit", "verify")
    assert verdict.returncode == 1 and f"broken at entry {position}" in verdict.stdout


def _tampered_exports(lines: list[str]) -> dict[str, tuple[list[str], int]]:
    entries = [json.loads(line) for line in lines[:-1]]
    edited = [dict(e) for e in entries]
    edited[2]["details"] = {"n": 42}
    forged_insert = dict(entries[1], details={"n": "forged"})
    return {
        "edited": ([*map(json.dumps, edited), lines[-1]], 3),
        "deleted": ([*lines[:3], *lines[4:]], 4),
        "inserted": ([*lines[:2], json.dumps(forged_insert), *lines[2:]], 3),
        "reordered": ([lines[0], lines[2], lines[1], *lines[3:]], 2),
        "truncated": (lines[:-2], 6),
        "tail cut, trailer kept": ([*lines[:-2], lines[-1]], 6),
    }


@pytest.mark.parametrize(
    "case", ["edited", "deleted", "inserted", "reordered", "truncated", "tail cut, trailer kept"]
)
def test_tampering_in_an_export_is_found_and_named(
    cli, services: Services, settings: ServerSettings, tmp_path: Path, case: str
) -> None:
    fill(services)
    export = tmp_path / "audit.jsonl"
    assert cli(settings, "audit", "export", str(export)).returncode == 0
    lines, position = _tampered_exports(export.read_text().splitlines())[case]
    bad = tmp_path / "tampered.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    verdict = cli(settings, "audit", "verify", "--file", str(bad))
    assert verdict.returncode == 1, verdict.stdout + verdict.stderr
    assert f"broken at entry {position}" in verdict.stdout


def test_a_different_secret_cannot_forge_the_chain(
    cli, services: Services, settings: ServerSettings, tmp_path: Path
) -> None:
    fill(services, 2)
    other = settings.model_copy(update={"secret_key": SecretStr("another-secret-" * 4)})
    verdict = cli(other, "audit", "verify")
    assert verdict.returncode == 1 and "broken at entry 1" in verdict.stdout


def test_the_api_pages_filters_and_verifies(client: TestClient, services: Services, as_role: dict) -> None:
    fill(services, 5)
    auditor = as_role["auditor"]
    page = client.get("/v1/audit", params={"action": "test_event", "limit": 2}, headers=auditor).json()
    assert [e["details"]["n"] for e in page["entries"]] == [0, 1]
    following = client.get(
        "/v1/audit",
        params={"action": "test_event", "limit": 2, "after_seq": page["next_after_seq"]},
        headers=auditor,
    ).json()
    assert [e["details"]["n"] for e in following["entries"]] == [2, 3]
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True
    assert client.get("/v1/audit", params={"limit": 0}, headers=auditor).status_code == 422
    assert client.get("/v1/audit", params={"from": "yesterday"}, headers=auditor).status_code == 422


def test_cli_mistakes_exit_2_with_a_sentence(
    cli, settings: ServerSettings, services: Services, tmp_path: Path
) -> None:
    missing = cli(settings, "audit", "verify", "--file", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "no audit export" in missing.stderr
    no_file = cli(settings, "audit", "export")
    assert no_file.returncode == 2 and "needs a FILE" in no_file.stderr
