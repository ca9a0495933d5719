"""The SQL of the SQLite family (SQLite files and libSQL servers).

One place for every statement, shared by this package's aiosqlite engine and
by storage-core-libsql, which sends the same statements to sqld. Parameters
are positional (``?``) in the order each docstring gives.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2
"""The schema this package writes. 1: agent-squad's table and index plus
``storage_core_meta``; 2: adds ``storage_core_requests`` (exactly-once writes).
``initialize()`` upgrades 1 (and a database with no version: agent-squad's)
to 2 in place and refuses a newer one."""

LOOKUP_INDEX = "idx_conversations_lookup"
"""agent-squad's index on (user_id, session_id, agent_id)."""

# Remembered write requests per conversation (storage_core.REQUESTS_REMEMBERED).
REQUESTS_REMEMBERED = 100

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
    f"""CREATE INDEX IF NOT EXISTS {LOOKUP_INDEX}
    ON conversations(user_id, session_id, agent_id)""",
    # Additive: records the schema version storage_core wrote.
    """CREATE TABLE IF NOT EXISTS storage_core_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    # Version 2, additive: the request ids of recent writes, for exactly-once
    # writes. ``seq`` numbers a conversation's records; a trigger keeps the
    # newest REQUESTS_REMEMBERED of them (one range delete on the key, every
    # 16th record: at most 15 more are kept meanwhile).
    """CREATE TABLE IF NOT EXISTS storage_core_requests (
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_index INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    role TEXT,
    content TEXT,
    timestamp INTEGER,
    PRIMARY KEY (user_id, session_id, agent_id, seq),
    UNIQUE (user_id, session_id, agent_id, request_id)
) WITHOUT ROWID""",
    f"""CREATE TRIGGER IF NOT EXISTS storage_core_requests_bound
AFTER INSERT ON storage_core_requests WHEN NEW.seq % 16 = 0 BEGIN
    DELETE FROM storage_core_requests
    WHERE user_id = NEW.user_id AND session_id = NEW.session_id
      AND agent_id = NEW.agent_id AND seq <= NEW.seq - {REQUESTS_REMEMBERED};
END""",
    f"""INSERT OR IGNORE INTO storage_core_meta (key, value)
    VALUES ('schema_version', '{SCHEMA_VERSION}')""",
    f"""UPDATE storage_core_meta SET value = '{SCHEMA_VERSION}'
    WHERE key = 'schema_version' AND CAST(value AS INTEGER) < {SCHEMA_VERSION}""",
)
"""Creates the schema or upgrades an older one in place; idempotent. Run it
only after `READ_SCHEMA_VERSION` showed no newer version."""

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
(``plan.oldest_first``)."""

WHOLE = f"""SELECT {_COLUMNS} FROM conversations WHERE {_CONV}
ORDER BY message_index"""
"""(user, session, agent): every row, OLDEST FIRST. SQLite walks the primary
key forwards faster than backwards (5.8 against 7.0 ms for 10,000 rows, as
measured for docs/performance.md), so a read of a whole conversation uses
this rather than ``NEWEST`` with no limit."""

SESSION = f"SELECT {_COLUMNS} FROM conversations WHERE user_id = ? AND session_id = ?"
"""(user, session): every row of a session, any order."""

SESSIONS = """SELECT session_id, agent_id, COUNT(*), MAX(timestamp) FROM conversations
WHERE user_id = ? GROUP BY session_id, agent_id"""
"""(user): per (session, agent): message count and last timestamp."""

RESPONSE_BUDGET = 4 * 1024 * 1024
"""Content bytes one `NEWEST_WITHIN` answer carries (beyond its first row).

libSQL servers refuse to send a response over a size limit (sqld's
``--max-response-size``, 10 MB by default), so a remote read of a larger
window fails as a whole; the remote engine reads such a window in parts."""

NEWEST_WITHIN = f"""SELECT {_COLUMNS}, upto FROM (
    SELECT {_COLUMNS}, length(CAST(content AS BLOB)) AS size,
           SUM(length(CAST(content AS BLOB))) OVER (ORDER BY message_index DESC) AS upto
    FROM conversations WHERE {_CONV} AND message_index < ?
    ORDER BY message_index DESC LIMIT ?)
WHERE upto - size < ?"""
"""(user, session, agent, before_index, limit, budget): like ``BEFORE``, but
stops once the rows' content reached ``budget`` bytes (always one row at
least); each row ends with ``upto``, the content bytes up to it. When the
last row's ``upto`` is below the budget, nothing was left out."""

BEFORE = f"""SELECT {_COLUMNS} FROM conversations
WHERE {_CONV} AND message_index < ? ORDER BY message_index DESC LIMIT ?"""
"""(user, session, agent, before_index, limit): the newest ``limit`` rows (-1:
all) below ``before_index``, NEWEST FIRST (the primary key walked backwards
from that index; callers reverse)."""


def _sessions_page(cursor: str) -> str:
    # The page's sessions are picked by one pass over the user's rows in
    # index order (grouped by session, then the newest ``limit`` groups
    # kept); their (session, agent) counts are then read by key: CROSS JOIN
    # keeps the page as the outer loop (else SQLite scans the user's rows again).
    return f"""WITH page(session_id) AS (
    SELECT session_id FROM conversations WHERE user_id = ?1
    GROUP BY session_id{cursor}
    ORDER BY MAX(timestamp) DESC, session_id LIMIT ?2)
SELECT c.session_id, c.agent_id, COUNT(*), MAX(c.timestamp)
FROM page CROSS JOIN conversations AS c
WHERE c.user_id = ?1 AND c.session_id = page.session_id
GROUP BY c.session_id, c.agent_id"""


SESSIONS_PAGE_FIRST = _sessions_page("")
"""(user, limit): the rows of ``SESSIONS`` (per session and agent, any
order) for the first ``limit`` sessions (-1: all) in ``list_sessions`` order
(newest activity first, then session id)."""

SESSIONS_PAGE_AFTER = _sessions_page(
    "\n    HAVING MAX(timestamp) < ?3 OR (MAX(timestamp) = ?3 AND session_id > ?4)"
)
"""(user, limit, last_timestamp, session_id): as ``SESSIONS_PAGE_FIRST``, for
the sessions after the cursor ``(last_timestamp, session_id)`` in that order."""

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
``SQLITE_BUSY`` whenever another writer committed in between (often, under
concurrent writers: docs/performance.md has the figures). Starting with this
statement makes sqld queue the batch on the write lock instead.
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


# -- exactly-once writes (storage_core_requests) ---------------------------

_REQ_CONV = "user_id = ?1 AND session_id = ?2 AND agent_id = ?3"
_NEXT_SEQ = f"""COALESCE((SELECT MAX(seq) FROM storage_core_requests WHERE {_REQ_CONV}), 0) + 1"""


def record_append(*, skip_same_role: bool) -> str:
    """(user, session, agent, request_id, row count, first row's role): records
    the request with the index its first stored row takes and how many rows
    it stores (computed as ``insert_rows`` does, so it runs before the
    inserts), unless it stores none. A request id recorded before makes it
    fail on the UNIQUE constraint, rolling the whole save back. The next
    index is a scalar ``MAX`` subquery: SQLite reads the last index entry
    for it only when ``MAX`` is a query's sole result column, and otherwise
    walks every row of the conversation."""
    skip = (
        f"""(SELECT role FROM conversations WHERE {_REQ_CONV}
              ORDER BY message_index DESC LIMIT 1) IS ?6"""
        if skip_same_role
        else "0"
    )
    return f"""INSERT INTO storage_core_requests
    (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count)
SELECT ?1, ?2, ?3, {_NEXT_SEQ}, ?4, 'append', b.next, ?5 - b.skip
FROM (SELECT COALESCE((SELECT MAX(message_index) FROM conversations WHERE {_REQ_CONV}), -1)
             + 1 AS next, {skip} AS skip) AS b
WHERE ?5 - b.skip > 0"""


RECORD_KNOWN = f"""INSERT INTO storage_core_requests
    (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count)
VALUES (?1, ?2, ?3, {_NEXT_SEQ}, ?4, 'append', ?5, ?6)"""
"""(user, session, agent, request_id, first index, row count): the record of
an append whose stored rows are known (an engine that reads between statements)."""

RECORD_POP = f"""INSERT INTO storage_core_requests
    (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count,
     role, content, timestamp)
SELECT ?1, ?2, ?3, {_NEXT_SEQ}, ?4, 'pop', message_index, 1, role, content, timestamp
FROM conversations WHERE {_REQ_CONV} ORDER BY message_index DESC LIMIT 1"""
"""(user, session, agent, request_id): records the pop of the newest row (run
before ``POP``, under the same write lock); nothing when the conversation is empty."""

RECORDED = f"""SELECT kind, first_index, row_count, agent_id, role, content, timestamp
FROM storage_core_requests WHERE {_REQ_CONV} AND request_id = ?4"""
"""(user, session, agent, request_id): the record of a request, if any."""

PROBE_REQUEST = f"""INSERT INTO storage_core_requests
SELECT * FROM storage_core_requests WHERE {_REQ_CONV} AND request_id = ?4"""
"""(user, session, agent, request_id): fails on the UNIQUE constraint if the
request was recorded, else changes nothing: the first statement of a replayed
write in a batch, which cannot read before it writes."""

REPLAY_HISTORY = f"""SELECT {_COLUMNS} FROM conversations
WHERE {_REQ_CONV} AND message_index < (
    SELECT first_index + row_count FROM storage_core_requests
    WHERE {_REQ_CONV} AND request_id = ?4)
ORDER BY message_index DESC LIMIT ?5"""
"""(user, session, agent, request_id, limit): the history a recorded save
returned: the newest ``limit`` rows (-1: all) up to its last stored row, NEWEST
FIRST (rows deleted since are missing)."""

DUPLICATE_REQUEST = "storage_core_requests"
"""Part of the text of the constraint error a recorded request id raises."""

DELETE_SESSION_REQUESTS = (
    "DELETE FROM storage_core_requests WHERE user_id = ? AND session_id = ?"
)
DELETE_CONVERSATION_REQUESTS = (
    "DELETE FROM storage_core_requests WHERE user_id = ? AND session_id = ? AND agent_id = ?"
)
DELETE_USER_REQUESTS = "DELETE FROM storage_core_requests WHERE user_id = ?"
PRUNE_REQUESTS = """DELETE FROM storage_core_requests WHERE NOT EXISTS (
    SELECT 1 FROM conversations c WHERE c.user_id = storage_core_requests.user_id
      AND c.session_id = storage_core_requests.session_id
      AND c.agent_id = storage_core_requests.agent_id)"""
"""(): forget the requests of conversations that have no rows left (after ``PRUNE``)."""
