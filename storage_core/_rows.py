"""Turning a backend's result rows into the core's types, the same for every SQL backend."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ._backend import TableRow
from ._model import SessionInfo

__all__ = ["merge_sessions", "sessions_in_order", "table_rows"]


def merge_sessions(rows: Iterable[Sequence[Any]]) -> list[SessionInfo]:
    """Rows of ``(session_id, agent_id, message count, last timestamp)``, one
    per conversation, -> one [`SessionInfo`][storage_core.SessionInfo] per
    session (agents sorted; counts added; the newest timestamp), in the order
    the sessions first appear."""
    merged: dict[str, tuple[list[str], int, int]] = {}
    for session_id, agent_id, count, last in rows:
        # The first row's timestamp as the start: a legacy row's may be negative.
        agents, total, latest = merged.get(session_id, ([], 0, int(last)))
        agents.append(str(agent_id))
        merged[session_id] = (agents, total + int(count), max(latest, int(last)))
    return [
        SessionInfo(str(sid), tuple(sorted(agents)), total, latest)
        for sid, (agents, total, latest) in merged.items()
    ]


def sessions_in_order(sessions: Iterable[SessionInfo]) -> list[SessionInfo]:
    """Sessions in ``list_sessions`` order: newest activity first, then by
    session id (code points)."""
    return sorted(sessions, key=lambda s: (-s.last_timestamp, s.session_id))


def table_rows(rows: Iterable[Sequence[Any]]) -> list[TableRow]:
    """Rows of ``(user_id, session_id, agent_id, message_index, role, content,
    timestamp)`` -> [`TableRow`][storage_core.backend.TableRow]s."""
    return [
        TableRow(str(u), str(s), str(a), int(i), str(r), str(c), int(t))
        for u, s, a, i, r, c, t in rows
    ]
