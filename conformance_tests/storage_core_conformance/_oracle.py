"""The model the state machine compares every backend with: the contract as
plain lists, written apart from storage_core (no import of its rules or of
``memory://``), so a bug there cannot hide by happening on both sides."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._support import AUTO_TIMESTAMP_FLOOR

__all__ = ["Key", "Model", "ModelRow", "Refused", "prefixed"]

Key = tuple[str, str, str]
"""``(user_id, session_id, agent_id)``."""


class Refused(Exception):
    """The model's word for "the call must raise ValidationError and change nothing"."""


@dataclass
class ModelRow:
    """One stored message. ``timestamp`` is None for a clock timestamp the
    model has not seen yet (the first read shows it; from then on it is exact)."""

    agent_id: str
    index: int
    role: str
    content: Any
    timestamp: int | None
    auto: bool = False


def prefixed(role: str, content: Any, agent_id: str) -> Any:
    """Content as the session view shows it: in an assistant message, the
    first block that is a mapping with a string ``text`` gets ``[agent] ``
    before its text (its other keys, in order, and every other block kept);
    a string content is prefixed itself; anything else is unchanged."""
    if role != "assistant":
        return content
    mark = f"[{agent_id}] "
    if isinstance(content, str):
        return mark + content
    if not isinstance(content, list):
        return content
    out = list(content)
    for i, block in enumerate(out):
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            out[i] = {k: mark + v if k == "text" else v for k, v in block.items()}
            break
    return out


def plain(content: Any) -> Any:
    """``content`` as any JSON reader gives it back (tuples become lists)."""
    return json.loads(json.dumps(content))


@dataclass
class Model:
    """Every conversation as a list of rows in index order."""

    skip_same_role: bool
    trim: str
    conversations: dict[Key, list[ModelRow]] = field(default_factory=dict)

    def keep(self, size: int | None) -> int | None:
        """How many rows ``max_history_size`` keeps (Refused when invalid)."""
        if size is None:
            return None
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 2**31 - 1:
            raise Refused(f"max_history_size {size!r}")
        if self.trim == "pairs":
            if size < 2:
                raise Refused("max_history_size 1 with trim='pairs'")
            return size - size % 2
        return size

    def rows(self, key: Key) -> list[ModelRow]:
        return self.conversations.get(key, [])

    @staticmethod
    def _newest(rows: list[ModelRow], keep: int | None) -> list[ModelRow]:
        return list(rows) if keep is None else list(rows[-keep:])  # keep is at least 1

    def write(
        self, key: Key, batch: Sequence[tuple[str, Any, int | None]], size: int | None
    ) -> tuple[list[ModelRow], list[ModelRow]]:
        """A batch save: ``(history after it, rows it stored)``."""
        keep = self.keep(size)
        given = list(batch)
        if self.skip_same_role:
            given = [m for i, m in enumerate(given) if i == 0 or m[0] != given[i - 1][0]]
        current = self.rows(key)
        if not given:  # an empty batch stores and trims nothing
            return self._newest(current, keep), []
        if self.skip_same_role and current and current[-1].role == given[0][0]:
            given = given[1:]
        start = current[-1].index + 1 if current else 0
        stored = [
            ModelRow(key[2], start + i, role, plain(content), ts, auto=ts is None)
            for i, (role, content, ts) in enumerate(given)
        ]
        after = self._newest(current + stored, keep)
        self._set(key, after)
        return self._newest(after, keep), stored

    def fetch(self, key: Key, size: int | None) -> list[ModelRow]:
        return self._newest(self.rows(key), self.keep(size))

    def pop(self, key: Key) -> ModelRow | None:
        rows = self.rows(key)
        if not rows:
            return None
        row = rows[-1]
        self._set(key, rows[:-1])
        return row

    def session(self, user: str, session: str) -> list[ModelRow]:
        """The session view: every agent's rows by (timestamp, agent, index),
        assistant content prefixed."""
        rows = [
            ModelRow(r.agent_id, r.index, r.role, prefixed(r.role, r.content, r.agent_id),
                     r.timestamp, r.auto)
            for (u, s, _), conv in self.conversations.items() if (u, s) == (user, session)
            for r in conv
        ]
        if all(r.timestamp is not None for r in rows):
            rows.sort(key=lambda r: (r.timestamp or 0, r.agent_id, r.index))
        return rows

    def sessions(self, user: str) -> list[tuple[str, tuple[str, ...], int, int | None]]:
        """``(session_id, agent_ids, message_count, last_timestamp)``, newest first."""
        by_session: dict[str, list[tuple[str, list[ModelRow]]]] = {}
        for (u, s, a), rows in self.conversations.items():
            if u == user and rows:
                by_session.setdefault(s, []).append((a, rows))
        out = []
        for sid, convs in by_session.items():
            stamps = [r.timestamp for _, rows in convs for r in rows]
            last = None if None in stamps else max(t for t in stamps if t is not None)
            out.append((sid, tuple(sorted(a for a, _ in convs)),
                        sum(len(rows) for _, rows in convs), last))
        if all(x[3] is not None for x in out):
            out.sort(key=lambda x: (-(x[3] or 0), x[0]))
        return out

    def delete(self, user: str, session: str | None = None, agent: str | None = None) -> int:
        doomed = [k for k in self.conversations
                  if k[0] == user and session in (None, k[1]) and agent in (None, k[2])]
        return sum(len(self.conversations.pop(k)) for k in doomed)

    def import_rows(self, rows: Sequence[tuple[Key, int, str, str, int]]) -> int:
        """Insert rows as they are, skipping any whose (key, index) exists."""
        added = 0
        for key, index, role, text, ts in rows:
            current = self.rows(key)
            if any(r.index == index for r in current):
                continue
            new = ModelRow(key[2], index, role, json.loads(text), ts)
            self._set(key, sorted([*current, new], key=lambda r: r.index))
            added += 1
        return added

    def prune(self, before: int) -> int:
        doomed = [k for k, rows in self.conversations.items()
                  if rows and all(r.timestamp is not None and r.timestamp < before
                                  for r in rows)]
        return sum(len(self.conversations.pop(k)) for k in doomed)

    def every_row(self) -> list[tuple[Key, ModelRow]]:
        """Every row in export order (user, session, agent, index)."""
        return [(k, r) for k in sorted(self.conversations) for r in self.conversations[k]]

    def _set(self, key: Key, rows: list[ModelRow]) -> None:
        if rows:
            self.conversations[key] = rows
        else:
            self.conversations.pop(key, None)


def same_rows(got: Sequence[Any], want: Sequence[ModelRow], what: str) -> None:
    """``got`` (StoredMessages) are ``want``: agent, index, role and content
    exactly; a timestamp the caller gave exactly, a clock one at or above
    the clock's floor, and equal to what was read before once seen."""
    shown = [(m.agent_id, m.index, m.role, m.content) for m in got]
    expected = [(r.agent_id, r.index, r.role, r.content) for r in want]
    assert shown == expected, f"{what} differs from the model:\n got  {shown}\n want {expected}"
    for m, r in zip(got, want, strict=True):
        if not r.auto:
            assert m.timestamp == r.timestamp, (
                f"{what}: index {r.index} has timestamp {m.timestamp}, given {r.timestamp}")
            continue
        assert m.timestamp >= AUTO_TIMESTAMP_FLOOR, (
            f"{what}: index {r.index} has clock timestamp {m.timestamp}")
        if r.timestamp is None:
            r.timestamp = m.timestamp
        assert m.timestamp == r.timestamp, (
            f"{what}: index {r.index}'s clock timestamp changed from {r.timestamp} "
            f"to {m.timestamp}")
