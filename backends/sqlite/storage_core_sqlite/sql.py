"""The SQL of the SQLite family (SQLite files and libSQL servers).

One place for every statement, shared by this package's aiosqlite engine and
by storage-core-libsql, which sends the same statements to sqld. Parameters
are positional (``?``) in the order each docstring gives.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

# The table and index of agent-squad's SqlChatStorage, unchanged, so its
# databases are read and written as they are.
SCHEMA: tuple[str, ...] = (
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
    # Additive: records the schema version storage_core wrote.
    """CREATE TABLE IF NOT EXISTS storage_core_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    f"""INSERT OR IGNORE INTO storage_core_meta (key, value)
    VALUES ('schema_version', '{SCHEMA_VERSION}')""",
)

_CONV = "user_id = ? AND session_id = ? AND agent_id = ?"
_COLUMNS = "agent_id, message_index, role, content, timestamp"

LAST_ROW = f"""SELECT message_index, role FROM conversations WHERE {_CONV}
ORDER BY message_index DESC LIMIT 1"""
"""(user, session, agent) -> the last row's index and role; no row if empty."""

INSERT_AT = """INSERT INTO conversations
    (user_id, session_id, agent_id, message_index, role, content, timestamp)
VALUES (?, ?, ?, ?, ?, ?, ?)"""
"""(user, session, agent, index, role, content, timestamp): a row at a known
index (a batch, inside a transaction that read ``LAST_ROW`` under the write lock)."""

INSERT_NEXT = """INSERT INTO conversations
    (user_id, session_id, agent_id, message_index, role, content, timestamp)
SELECT ?1, ?2, ?3,
    COALESCE((SELECT MAX(message_index) FROM conversations
              WHERE user_id = ?1 AND session_id = ?2 AND agent_id = ?3), -1) + 1,
    ?4, ?5, ?6"""
"""(user, session, agent, role, content, timestamp): append with the next index."""

INSERT_NEXT_UNLESS_SAME_ROLE = INSERT_NEXT + """
WHERE (SELECT role FROM conversations
       WHERE user_id = ?1 AND session_id = ?2 AND agent_id = ?3
       ORDER BY message_index DESC LIMIT 1) IS NOT ?4"""
"""Like INSERT_NEXT, but stores nothing when the last stored role is the same.

Used for every row of a batch: the core removes same-role neighbours from a
batch, so only the first row can ever match the stored last role.
"""

HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
"""The SQLite linked into Python has ``RETURNING`` (3.35 and later; libSQL
servers are newer still)."""

RETURNING_INDEX = "\nRETURNING message_index"
"""Appended to INSERT_NEXT(_UNLESS_SAME_ROLE) to get the index a one-row save
took (no row back: the role rule left it out) without reading it first;
SQLite 3.35 and later."""

ROWS_PER_INSERT = 500
"""Rows per `insert_rows` statement (3 parameters a row, far below
SQLite's limit of 32,766)."""


def insert_rows(count: int, *, skip_same_role: bool) -> str:
    """One statement appending ``count`` rows after the conversation's last
    index and returning the index of each row stored; parameters: (user,
    session, agent, then role, content, timestamp of each row).

    With ``skip_same_role`` the first row is left out (and the others move up
    one place) when its role is the stored last role. One statement instead
    of one per row: sqld runs each statement of a batch as a separate step.
    """
    values = ", ".join(f"({i}, ?{4 + 3 * i}, ?{5 + 3 * i}, ?{6 + 3 * i})" for i in range(count))
    conv = "user_id = ?1 AND session_id = ?2 AND agent_id = ?3"
    skip = (
        f"""(SELECT role FROM conversations WHERE {conv}
              ORDER BY message_index DESC LIMIT 1) IS ?4"""
        if skip_same_role
        else "0"
    )
    return f"""WITH new(pos, role, content, timestamp) AS (VALUES {values}),
base(next, skip) AS (
    SELECT COALESCE(MAX(message_index), -1) + 1, {skip} FROM conversations WHERE {conv})
INSERT INTO conversations
    (user_id, session_id, agent_id, message_index, role, content, timestamp)
SELECT ?1, ?2, ?3, base.next + new.pos - base.skip, new.role, new.content, new.timestamp
FROM new, base WHERE new.pos > 0 OR NOT base.skip
RETURNING message_index"""


TRIM = f"""DELETE FROM conversations
WHERE {_CONV} AND message_index < (
    SELECT message_index FROM conversations WHERE {_CONV}
    ORDER BY message_index DESC LIMIT 1 OFFSET ?)"""
"""(user, session, agent, user, session, agent, keep - 1): keep the newest
``keep`` rows, counted, whatever gaps the indexes have (imported or
hand-edited conversations): the cut is the index of the keep-th newest row,
found by walking the primary key backwards; with fewer rows there is no cut
(NULL) and nothing is deleted."""

NEWEST = f"""SELECT {_COLUMNS} FROM conversations WHERE {_CONV}
ORDER BY message_index DESC LIMIT ?"""
"""(user, session, agent, limit): the newest ``limit`` rows (-1: all), NEWEST FIRST.

Walking the primary key backwards needs no sort; callers reverse the rows
(``plan.from_newest``)."""

SINCE = f"""SELECT {_COLUMNS} FROM conversations
WHERE {_CONV} AND message_index > ? ORDER BY message_index"""
"""(user, session, agent, index): rows after ``index``, oldest first."""

SESSION = f"SELECT {_COLUMNS} FROM conversations WHERE user_id = ? AND session_id = ?"
"""(user, session): every row of a session, any order."""

SESSIONS = """SELECT session_id, agent_id, COUNT(*), MAX(timestamp) FROM conversations
WHERE user_id = ? GROUP BY session_id, agent_id"""
"""(user): per (session, agent): message count and last timestamp."""

NEWEST_INDEX_DELETE = f"DELETE FROM conversations WHERE {_CONV} AND message_index = ?"
"""(user, session, agent, index): delete one row (the pop of the aiosqlite
engine, after ``NEWEST`` with limit 1 in the same ``BEGIN IMMEDIATE``)."""

POP = f"""DELETE FROM conversations
WHERE user_id = ?1 AND session_id = ?2 AND agent_id = ?3 AND message_index = (
    SELECT MAX(message_index) FROM conversations
    WHERE user_id = ?1 AND session_id = ?2 AND agent_id = ?3)
RETURNING {_COLUMNS}"""
"""(user, session, agent): delete the newest row and return it (no row: the
conversation is empty). SQLite 3.35 and later (libSQL servers); one statement,
so the read of the newest index and the delete see the same state."""

DELETE_SESSION = "DELETE FROM conversations WHERE user_id = ? AND session_id = ?"
DELETE_CONVERSATION = (
    "DELETE FROM conversations WHERE user_id = ? AND session_id = ? AND agent_id = ?"
)
DELETE_USER = "DELETE FROM conversations WHERE user_id = ?"

TAKE_WRITE_LOCK = "DELETE FROM conversations WHERE 0"
"""(): changes nothing, but as the first statement of a transaction opened with
a plain (deferred) ``BEGIN`` it takes the write lock before anything is read.

libsql-client wraps a batch in ``BEGIN`` ... ``COMMIT``; a batch that starts
with a read and then writes must upgrade its read snapshot, which fails with
``SQLITE_BUSY`` whenever another writer committed in between (measured on sqld
0.24: 160 saves from 16 concurrent writers met 67 to 241 such errors). Starting
with this statement makes sqld queue the batch on the write lock instead (none).
"""

# -- whole-table tools (export, import, prune, doctor) ---------------------

_TABLE_COLUMNS = "user_id, session_id, agent_id, message_index, role, content, timestamp"
_TABLE_ORDER = "ORDER BY user_id, session_id, agent_id, message_index"

EXPORT_FIRST = f"SELECT {_TABLE_COLUMNS} FROM conversations {_TABLE_ORDER} LIMIT ?"
"""(limit): the first rows of the table in key order."""

EXPORT_AFTER = f"""SELECT {_TABLE_COLUMNS} FROM conversations
WHERE (user_id, session_id, agent_id, message_index) > (?, ?, ?, ?)
{_TABLE_ORDER} LIMIT ?"""
"""(user, session, agent, index, limit): the rows after a key, in key order."""

IMPORT = f"INSERT OR IGNORE INTO conversations ({_TABLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
"""A row as it is; an existing (user, session, agent, index) is left alone."""

PRUNE = """DELETE FROM conversations
WHERE (user_id, session_id, agent_id) IN (
    SELECT user_id, session_id, agent_id FROM conversations
    GROUP BY user_id, session_id, agent_id HAVING MAX(timestamp) < ?)"""
"""(timestamp): delete the conversations with no message since then."""

ROW_COUNT = "SELECT COUNT(*) FROM conversations"
READ_SCHEMA_VERSION = "SELECT value FROM storage_core_meta WHERE key = 'schema_version'"
INDEXES = """SELECT name FROM sqlite_master
WHERE type = 'index' AND tbl_name = 'conversations' ORDER BY name"""
