"""Source URLs without their secrets: what may be shown, returned or logged."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
SECRET_QUERY_KEYS = ("pass", "pwd", "token", "key", "secret", "auth", "sig")


def redact(url: str) -> str:
    """The URL without user name, password or secret-looking query values."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        hidden = [(k, HIDDEN if any(s in k.lower() for s in SECRET_QUERY_KEYS) else v) for k, v in pairs]
        query = urlencode(hidden, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_in(text: str, url: str) -> str:
    """An error message that may quote the URL (FFmpeg does), with the URL redacted."""
    return text.replace(url, redact(url)) if url else text
