"""What agent-squad's ``SqlChatStorage`` leaves on disk, for compatibility tests.

A SQLite-family backend promises to read and extend such a database as it
is; these helpers write one without any storage_core code, so a test checks
the promise against the original's schema rather than against our own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["ORIGINAL_DDL", "Row", "write_agent_squad_database"]

ORIGINAL_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS conversations (
        user_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        message_index INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        timestamp INTEGER NOT NULL,
        PRIMARY KEY (user_id, session_id, agent_id, message_index)
    )""",
    """CREATE INDEX IF NOT EXISTS idx_conversations_lookup
        ON conversations(user_id, session_id, agent_id)""",
)
"""The table and index exactly as agent-squad's ``SqlChatStorage`` creates them."""

Row = tuple[str, str, str, int, str, Any, int]


def write_agent_squad_database(path: Path | str, rows: Iterable[Row]) -> None:
    """Create ``path`` as ``SqlChatStorage`` would and insert ``rows``:
    ``(user_id, session_id, agent_id, message_index, role, content, timestamp)``
    with ``content`` stored as ``json.dumps(content)`` (ASCII-escaped, as the
    original writes it)."""
    db = sqlite3.connect(path)
    try:
        with db:
            for statement in ORIGINAL_DDL:
                db.execute(statement)
            db.executemany(
                "INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(u, s, a, i, r, json.dumps(c), t) for u, s, a, i, r, c, t in rows],
            )
    finally:
        db.close()
