"""The tamper-evident audit log: append-only, each entry hash-chained to the one before.

hash = HMAC-SHA256(key, canonical JSON of the entry, which holds the previous entry's hash). Editing,
deleting, inserting or reordering an entry breaks the chain at that position; without the key nobody can
forge a consistent chain. An export ends with a keyed trailer naming the last entry, so a file with its
tail cut off fails verification too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..storage.tables import AuditHeadRow, AuditRow
from .clock import utc_now

GENESIS = "0" * 64
ENTRY_FIELDS = ("seq", "at", "actor", "action", "camera_id", "details", "prev_hash")
HEAD_ROW = 1


def canonical(entry: dict[str, Any]) -> bytes:
    """The exact bytes that are hashed: fixed fields, sorted keys, no spaces, UTF-8."""
    body = {name: entry[name] for name in ENTRY_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad_seq: int | None = None  # the position where the chain breaks
    reason: str | None = None

    def sentence(self) -> str:
        if self.ok:
            return f"audit log intact: {self.entries} entries verified"
        return f"audit log broken at entry {self.first_bad_seq}: {self.reason}"


def _row_dict(row: AuditRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "camera_id": row.camera_id,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


class AuditChain:
    """The keyed hash function and the verification walk, for the database and for exported files."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"cityveil audit chain\0" + key).digest()

    def digest(self, entry: dict[str, Any]) -> str:
        return hmac.new(self._key, canonical(entry), hashlib.sha256).hexdigest()

    def trailer(self, seq: int, last_hash: str) -> dict[str, Any]:
        mac = hmac.new(self._key, f"end:{seq}:{last_hash}".encode(), hashlib.sha256).hexdigest()
        return {"end": seq, "hash": last_hash, "mac": mac}

    def verify(self, entries: Iterable[dict[str, Any]], end: dict[str, Any] | None) -> Verification:
        """Walk the chain; `end` is the head (database) or trailer (file) that names the last entry."""
        expected_seq, prev, count = 1, GENESIS, 0
        for entry in entries:
            seq = entry.get("seq")
            if seq != expected_seq:
                what = "missing or inserted entries" if isinstance(seq, int) else "not an entry"
                return Verification(
                    False, count, expected_seq, f"expected entry {expected_seq}, found {seq} ({what})"
                )
            try:
                computed = self.digest(entry)
            except (KeyError, TypeError):
                return Verification(False, count, expected_seq, "entry lacks required fields")
            if entry["prev_hash"] != prev:
                return Verification(False, count, expected_seq, "does not follow the entry before it")
            if not hmac.compare_digest(computed, str(entry.get("hash"))):
                return Verification(False, count, expected_seq, "content altered (hash mismatch)")
            prev, expected_seq, count = computed, expected_seq + 1, count + 1
        last = expected_seq - 1
        if end is None:
            return Verification(False, count, last + 1, "the end marker is missing (truncated log)")
        if end.get("seq", end.get("end")) != last or end.get("hash") != prev:
            return Verification(
                False, count, last + 1, f"the log ends at entry {last}, its end marker does not"
            )
        if "mac" in end and not hmac.compare_digest(end["mac"], self.trailer(last, prev)["mac"]):
            return Verification(False, count, last + 1, "the end marker was forged")
        return Verification(True, count)


class AuditLog:
    """Appends go into the caller's write transaction, so an action and its audit entry commit together."""

    def __init__(self, key: bytes) -> None:
        self.chain = AuditChain(key)

    def append(
        self,
        session: Session,
        actor: str,
        action: str,
        details: dict[str, Any] | None = None,
        camera_id: str | None = None,
    ) -> dict[str, Any]:
        # The locked head row makes appends one at a time, even from several processes on PostgreSQL.
        head = session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == HEAD_ROW).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = AuditHeadRow(id=HEAD_ROW, seq=0, hash=GENESIS)
            session.add(head)
        entry = {
            "seq": head.seq + 1,
            "at": utc_now(),
            "actor": actor,
            "action": action,
            "camera_id": camera_id,
            # Through JSON once: the stored details must read back exactly as they were hashed.
            "details": json.loads(json.dumps(details or {}, default=str)),
            "prev_hash": head.hash,
        }
        entry["hash"] = self.chain.digest(entry)
        session.add(AuditRow(**entry))
        head.seq, head.hash = entry["seq"], entry["hash"]
        return entry

    def query(
        self,
        session: Session,
        *,
        camera_id: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        statement = select(AuditRow).where(AuditRow.seq > after_seq)
        if camera_id is not None:
            statement = statement.where(AuditRow.camera_id == camera_id)
        if action is not None:
            statement = statement.where(AuditRow.action == action)
        if actor is not None:
            statement = statement.where(AuditRow.actor == actor)
        if since is not None:
            statement = statement.where(AuditRow.at >= since)
        if until is not None:
            statement = statement.where(AuditRow.at < until)
        rows = session.execute(statement.order_by(AuditRow.seq).limit(limit)).scalars()
        return [_row_dict(row) for row in rows]

    def entries(self, session: Session, batch: int = 1000, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every entry matching `query`'s filters, in order, read in batches (the log grows unbounded)."""
        after = 0
        while True:
            rows = self.query(session, after_seq=after, limit=batch, **filters)
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1]["seq"]

    def _head(self, session: Session) -> dict[str, Any]:
        head = session.get(AuditHeadRow, HEAD_ROW)
        return {"seq": head.seq, "hash": head.hash} if head else {"seq": 0, "hash": GENESIS}

    def verify(self, session: Session) -> Verification:
        return self.chain.verify(self.entries(session), self._head(session))

    def export(self, session: Session, out: TextIO) -> int:
        """JSON lines, one entry each, then the keyed trailer. Returns the number of entries."""
        count, last = 0, GENESIS
        for entry in self.entries(session):
            out.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
            count, last = count + 1, entry["hash"]
        out.write(json.dumps(self.chain.trailer(count, last)) + "\n")
        return count

    def verify_file(self, path: Path) -> Verification:
        lines: list[dict[str, Any]] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                return Verification(False, len(lines), number, f"line {number} is not a JSON entry")
        end = lines.pop() if lines and "end" in lines[-1] else None
        return self.chain.verify(lines, end)
