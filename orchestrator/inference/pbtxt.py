"""A small reader for Triton's `config.pbtxt` (protobuf text format): enough to read the fields we use.

Every field maps to a list of values, because any protobuf field may repeat; messages are dicts.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{}\[\]:,;]|[^\s{}\[\]:,;"#]+|(\S)')
_PUNCTUATION = set("{}[]:,;")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


class PbtxtError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    tokens = []
    for match in _TOKEN.finditer(text):
        if match.group(1):
            raise PbtxtError(f"unexpected {match.group(1)!r} at offset {match.start()} (an unclosed string?)")
        if not match.group().startswith("#"):
            tokens.append(match.group())
    return tokens


def _scalar(token: str) -> Any:
    if token.startswith('"'):
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), token[1:-1])
    for cast in (int, float):
        try:
            return cast(token)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(token, token)


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise PbtxtError("unexpected end of config")
        self.i += 1
        return self.tokens[self.i - 1]

    def message(self, closing: str | None) -> dict[str, list[Any]]:
        fields: dict[str, list[Any]] = {}
        while self.peek() != closing:
            name = self.take()
            if name in "{}[]:,;":
                raise PbtxtError(f"expected a field name, found {name!r}")
            if self.peek() == ":":
                self.take()
            fields.setdefault(name, []).extend(self.value())
            if self.peek() in (",", ";"):
                self.take()
        if closing is not None:
            self.take()
        return fields

    def value(self) -> list[Any]:
        token = self.take()
        if token == "{":
            return [self.message("}")]
        if token == "[":
            items: list[Any] = []
            while self.peek() != "]":
                items.extend(self.value())
                if self.peek() == ",":
                    self.take()
            self.take()
            return items
        if token in _PUNCTUATION:
            raise PbtxtError(f"expected a value, found {token!r}")
        return [_scalar(token)]


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    return _Parser(_tokens(text)).message(None)
