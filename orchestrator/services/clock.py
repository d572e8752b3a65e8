"""One timestamp format for everything stored: ISO 8601 UTC with microseconds, so text order is time order."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
