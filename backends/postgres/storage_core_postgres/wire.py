"""Running one statement in one round trip, with or without prepared statements.

`PreparedRunner` is asyncpg's usual path: each statement is prepared
once per connection (cached), then every call is one Bind/Execute exchange.

`LiteralRunner` is for transaction-mode poolers such as PgBouncer,
which may hand the next message of a session to another server connection as
soon as a transaction ends, so a statement prepared in one exchange may be
gone (or be another client's) in the next. It sends each call as one
simple-protocol query with the values inlined as escaped literals, and reads
rows through ``COPY (query) TO STDOUT``: one message out, one reply, nothing
kept on the server between calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from storage_core import ValidationError

__all__ = ["LiteralRunner", "PreparedRunner", "Runner", "decode_copy_text", "inline", "literal"]

Decoder = Callable[[str], Any]


class Connection(Protocol):
    """The part of ``asyncpg.Connection`` the runners use."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...

    async def copy_from_query(
        self, query: str, *args: Any, output: Any, timeout: float | None = None,
        format: str | None = None,
    ) -> str: ...


class Runner(Protocol):
    async def rows(
        self, conn: Any, sql: str, args: Sequence[object], types: Sequence[Decoder]
    ) -> Sequence[Sequence[Any]]:
        """The rows of a query (tuples or asyncpg Records); ``types`` converts
        text columns (literal mode)."""

    async def status(self, conn: Any, sql: str, args: Sequence[object]) -> str:
        """Run a statement, return its command tag (``"DELETE 3"``)."""


class PreparedRunner:
    """Parameters sent separately; statements prepared and cached per connection."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout

    async def rows(
        self, conn: Connection, sql: str, args: Sequence[object], types: Sequence[Decoder]
    ) -> Sequence[Sequence[Any]]:
        # asyncpg's Records index and iterate like tuples: no copy needed.
        return await conn.fetch(sql, *args, timeout=self.timeout)

    async def status(self, conn: Connection, sql: str, args: Sequence[object]) -> str:
        return await conn.execute(sql, *args, timeout=self.timeout)


class LiteralRunner:
    """Values inlined as literals; the simple query protocol only."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout

    async def rows(
        self, conn: Connection, sql: str, args: Sequence[object], types: Sequence[Decoder]
    ) -> Sequence[Sequence[Any]]:
        chunks: list[bytes] = []

        async def collect(data: bytes) -> None:
            chunks.append(data)

        await conn.copy_from_query(
            inline(sql, args), output=collect, timeout=self.timeout, format="text"
        )
        return decode_copy_text(b"".join(chunks).decode("utf-8"), types)

    async def status(self, conn: Connection, sql: str, args: Sequence[object]) -> str:
        return await conn.execute(inline(sql, args), timeout=self.timeout)


_PARAM = re.compile(r"\$(\d+)")


def literal(value: object) -> str:
    """``value`` as an SQL literal, safe whatever ``standard_conforming_strings`` is.

    Strings use the ``E'...'`` form, where only ``\\`` and ``'`` need escaping;
    lists become ``ARRAY[...]`` (the statement's cast gives the element type).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value >= 0 else f"({value})"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError("PostgreSQL text cannot contain NUL characters")
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "ARRAY[" + ",".join(literal(v) for v in value) + "]"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def inline(sql: str, args: Sequence[object]) -> str:
    """Replace ``$1``, ``$2``, ... in ``sql`` with the literals of ``args`` (in one pass,
    so a literal that contains ``$2`` is never replaced again)."""
    return _PARAM.sub(lambda m: literal(args[int(m.group(1)) - 1]), sql)


_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_BACKSLASH = re.compile(r"\\(.)", re.DOTALL)


def _field(text: str) -> str | None:
    if text == "\\N":
        return None
    if "\\" not in text:
        return text
    return _BACKSLASH.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def decode_copy_text(data: str, types: Sequence[Decoder]) -> list[tuple[Any, ...]]:
    """Rows of ``COPY ... TO STDOUT`` in text format (tab-separated, one row a
    line, ``\\N`` for NULL, backslash escapes); each non-NULL field passed
    through the decoder of its column."""
    rows: list[tuple[Any, ...]] = []
    for line in data.split("\n"):
        if not line:
            continue
        fields = [_field(f) for f in line.split("\t")]
        if len(fields) != len(types):
            raise AssertionError(f"COPY row has {len(fields)} fields, expected {len(types)}")
        rows.append(
            tuple(None if f is None else t(f) for t, f in zip(types, fields, strict=True))
        )
    return rows
