"""The SQL of the PostgreSQL backend, for one schema.

Statements use ``$n`` parameters with explicit casts, so the same text runs
as a prepared statement or, behind a transaction-mode pooler, with the values
inlined as literals (`storage_core_postgres.wire`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

__all__ = ["APPEND_REVISION", "SCHEMA_VERSION", "Statements"]

SCHEMA_VERSION = 2
"""1: the original table and index plus ``storage_core_meta``; 2: adds
``storage_core_requests`` (exactly-once writes). initialize() upgrades 1 (or
no version) in place and refuses a newer one (SQLSTATE `NEWER_SCHEMA`)."""

REQUESTS_REMEMBERED = 100  # storage_core.REQUESTS_REMEMBERED

LOOKUP_INDEX = "idx_conversations_lookup"  # the original storage's index

# SQLSTATEs of the errors the functions raise themselves (class SC: storage_core).
NEWER_SCHEMA = "SCN01"
REUSED_REQUEST = "SCR01"
OTHER_LAYOUT = "SCL01"

# Advisory lock keys: the DDL of initialize(), and the seed of the
# per-conversation lock keys (both transaction-scoped, so poolers keep them).
_INIT_LOCK = 0x5C0E_1DDE
_CONVERSATION_SEED = 0x5C0E_C0DE

_APPEND_ARGS = (
    "text, text, text, text[], text[], bigint[], boolean, integer, boolean, integer, text, boolean"
)
_APPEND_ONE_ARGS = (
    "text, text, text, text, text, bigint, boolean, integer, boolean, integer, text, boolean"
)
_POP_ARGS = "text, text, text, text, boolean"

# The bodies of the save functions change without changing the table or the
# functions' signatures and results. Their revision is part of each function's
# comment, which `ready` checks, so initialize() of this version replaces an
# older body (CREATE OR REPLACE, under the init lock). A backend version that
# expects another comment puts its own body back on its next initialize; the
# bodies differ only in speed, so mixed versions stay correct meanwhile.
# Revision 3 added storage_core_append_one (revision 2 still calls only
# storage_core_append, which keeps its signature). Revision 5 trims by count
# (the keep-th newest row is the cut), where revision 4 assumed contiguous
# indexes and kept fewer rows of a conversation imported with gaps.
# Revision 6 added storage_core_pop (the save functions are unchanged).
# Revision 7 (schema 2) adds the request id and replay arguments to all three
# (new signatures; the old functions stay for older versions of this package).
APPEND_REVISION = 7

# The save and pop functions, whole, in functions/*.sql (package data), read
# once; the validated, quoted schema name is the only substitution.
_FUNCTION_FILES = ("storage_core_append", "storage_core_append_one", "storage_core_pop")
_SCHEMA_MARK = "@SCHEMA@"


@functools.cache
def function_source(name: str) -> str:
    """The text of ``functions/<name>.sql`` with ``@SCHEMA@`` still in it."""
    return (resources.files(__package__) / "functions" / f"{name}.sql").read_text("utf-8")


_FUNCTIONS = (
    ("storage_core_append", _APPEND_ARGS),
    ("storage_core_append_one", _APPEND_ONE_ARGS),
    ("storage_core_pop", _POP_ARGS),
)

_COMMENT = f"storage_core schema {SCHEMA_VERSION}, append revision {APPEND_REVISION}"

_COLUMNS = 'agent_id, message_index, role, content, "timestamp"'
_CONV = "user_id = $1::text AND session_id = $2::text AND agent_id = $3::text"
_TABLE_COLUMNS = 'user_id, session_id, agent_id, message_index, role, content, "timestamp"'
_TABLE_ORDER = "ORDER BY user_id, session_id, agent_id, message_index"


@dataclass(frozen=True)
class Statements:
    """Every statement of the backend, for the tables in ``schema``."""

    schema: str
    partitions: int | None = None
    """`PostgresConfig.partitions`: None takes the table as found; 0 expects
    a plain table; N one hash-partitioned by user_id into N partitions."""

    @property
    def _s(self) -> str:
        # The schema name is checked to be a plain identifier (PostgresConfig).
        return f'"{self.schema}"'

    @cached_property
    def ready(self) -> str:
        """-> one boolean: the schema of this version, with this revision of the
        save functions, is in place."""
        s = self.schema
        described = [
            f"obj_description(to_regprocedure('\"{s}\".{name}({args})'), 'pg_proc') "
            f"= '{_COMMENT}'"
            for name, args in _FUNCTIONS
        ]
        if self.partitions is not None:
            # A table of another layout is not ready: the schema script refuses it.
            described.append(f"{self._layout} = {self.partitions}")
        return f"SELECT to_regclass('\"{s}\".conversations') IS NOT NULL AND " + " AND ".join(
            described
        )

    @property
    def _layout(self) -> str:
        """-> the conversations table's layout: NULL (missing), 0 (a plain
        table), N (hash-partitioned by user_id into N), -1 (partitioned
        otherwise, or without partitions)."""
        return f"""(SELECT CASE WHEN c.relkind <> 'p' THEN 0
    WHEN EXISTS (SELECT FROM pg_partitioned_table p JOIN pg_attribute a
                 ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
                 WHERE p.partrelid = c.oid AND p.partstrat = 'h' AND p.partnatts = 1
                   AND a.attname = 'user_id')
    THEN (SELECT coalesce(nullif(count(*), 0), -1)::integer FROM pg_inherits i
          WHERE i.inhparent = c.oid)
    ELSE -1 END
 FROM pg_class c WHERE c.oid = to_regclass('{self._s}.conversations'))"""

    def _layout_check(self) -> list[str]:
        """The statement refusing an existing table of another layout than
        ``partitions`` asks for (none when it is None), before anything is created."""
        if self.partitions is None:
            return []
        wanted = (
            "a plain (unpartitioned) table (partitions=0)" if self.partitions == 0
            else f"one hash-partitioned by user_id into {self.partitions} partitions "
                 f"(partitions={self.partitions})"
        )
        return [f"""DO $storage_core$ DECLARE v integer := {self._layout}; BEGIN
    IF v IS NOT NULL AND v <> {self.partitions} THEN
        RAISE EXCEPTION '{self.schema}.conversations is %, but the URL asks for '
            '{wanted}; initialize() never changes an existing table''s layout (nothing was '
            'changed): match the URL to the table, or copy the rows into a new schema',
            CASE WHEN v = 0 THEN 'a plain (unpartitioned) table'
                 WHEN v > 0 THEN format('hash-partitioned by user_id into %s partitions', v)
                 ELSE 'partitioned otherwise (not by hash of user_id alone)' END
            USING ERRCODE = '{OTHER_LAYOUT}';
    END IF;
END $storage_core$"""]

    def _table(self, name: str, columns: str) -> str:
        """Creates table ``name`` if missing: plain, or hash-partitioned by
        user_id with its ``partitions`` partitions (``name_p0``...), as one statement."""
        s = self._s
        n = self.partitions
        if not n:
            return f"CREATE TABLE IF NOT EXISTS {s}.{name} (\n{columns}\n)"
        return f"""DO $storage_core$ BEGIN
    IF to_regclass('{s}.{name}') IS NULL THEN
        CREATE TABLE {s}.{name} (\n{columns}\n) PARTITION BY HASH (user_id);
        FOR i IN 0..{n - 1} LOOP
            EXECUTE format('CREATE TABLE {s}.%I PARTITION OF {s}.{name} '
                           'FOR VALUES WITH (MODULUS {n}, REMAINDER %s)', '{name}_p' || i, i);
        END LOOP;
    END IF;
END $storage_core$"""

    @cached_property
    def schema_script(self) -> str:
        """Creates or upgrades everything, as one implicit transaction that
        first takes an advisory lock, so concurrent initializations queue."""
        s = self._s
        return ";\n".join(
            [
                f"SELECT pg_advisory_xact_lock({_INIT_LOCK})",
                *self._layout_check(),
                f"""DO $storage_core$ BEGIN
    IF to_regnamespace('{s}') IS NULL THEN CREATE SCHEMA {s}; END IF;
END $storage_core$""",
                # The table and index of the original SQL storage, unchanged
                # (or hash-partitioned by user_id, with partitions=N).
                self._table("conversations", """\
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    "timestamp" BIGINT NOT NULL,
    PRIMARY KEY (user_id, session_id, agent_id, message_index)"""),
                f"""CREATE INDEX IF NOT EXISTS {LOOKUP_INDEX}
    ON {s}.conversations (user_id, session_id, agent_id)""",
                # Additive: the schema version, and the save function.
                f"""CREATE TABLE IF NOT EXISTS {s}.storage_core_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
                # A database of a newer release is left as it is.
                f"""DO $storage_core$ DECLARE v text; BEGIN
    SELECT value INTO v FROM {s}.storage_core_meta WHERE key = 'schema_version';
    IF v::integer > {SCHEMA_VERSION} THEN
        RAISE EXCEPTION 'storage_core schema version % is newer than the {SCHEMA_VERSION} '
            'this storage-core-postgres writes: upgrade the package (nothing was changed)', v
            USING ERRCODE = '{NEWER_SCHEMA}';
    END IF;
END $storage_core$""",
                # Schema 2: the request ids of recent writes (exactly-once),
                # partitioned like the conversations (the same user's rows together).
                self._table("storage_core_requests", """\
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_index INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    role TEXT,
    content TEXT,
    "timestamp" BIGINT,
    PRIMARY KEY (user_id, session_id, agent_id, seq),
    UNIQUE (user_id, session_id, agent_id, request_id)"""),
                *(
                    function_source(name).replace(_SCHEMA_MARK, s).rstrip().rstrip(";")
                    for name in _FUNCTION_FILES
                ),
                *(
                    f"COMMENT ON FUNCTION {s}.{name}({args}) IS '{_COMMENT}'"
                    for name, args in _FUNCTIONS
                ),
                f"""INSERT INTO {s}.storage_core_meta (key, value)
    VALUES ('schema_version', '{SCHEMA_VERSION}')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value""",
            ]
        )

    @cached_property
    def append(self) -> str:
        """(user, session, agent, roles, contents, timestamps, skip_same_role,
        keep, history, history_limit) -> rows (kind, agent_id, index, role,
        content, timestamp): kind 0 for each stored row, then kind 1 for the
        history. The timestamps travel as text[]: asyncpg has no built-in codec
        for bigint[] and would look the type up on every new connection."""
        return (
            f"SELECT * FROM {self._s}.storage_core_append($1::text, $2::text, $3::text, "
            "$4::text[], $5::text[], $6::text[]::bigint[], $7::boolean, $8::integer, "
            "$9::boolean, $10::integer, $11::text, $12::boolean)"
        )

    @cached_property
    def append_one(self) -> str:
        """`append` of one row, given as (user, session, agent, role,
        content, timestamp, ...): scalars, to storage_core_append_one."""
        return (
            f"SELECT * FROM {self._s}.storage_core_append_one($1::text, $2::text, $3::text, "
            "$4::text, $5::text, $6::bigint, $7::boolean, $8::integer, "
            "$9::boolean, $10::integer, $11::text, $12::boolean)"
        )

    @cached_property
    def pop(self) -> str:
        """(user, session, agent) -> the newest row, deleted (no row: the
        conversation is empty), in `newest`'s columns."""
        return (
            f"SELECT * FROM {self._s}.storage_core_pop($1::text, $2::text, $3::text, "
            "$4::text, $5::boolean)"
        )

    @cached_property
    def newest(self) -> str:
        """(user, session, agent, limit) -> the newest ``limit`` rows (NULL: all),
        NEWEST FIRST: the primary key walked backwards, no sort; callers reverse."""
        return (
            f"SELECT {_COLUMNS} FROM {self._s}.conversations "
            f"WHERE {_CONV} ORDER BY message_index DESC LIMIT $4::integer"
        )

    @cached_property
    def before(self) -> str:
        """(user, session, agent, before_index, limit) -> the newest ``limit``
        rows (NULL: all) below ``before_index``, NEWEST FIRST: the primary key
        walked backwards from that index; callers reverse."""
        return (
            f"SELECT {_COLUMNS} FROM {self._s}.conversations "
            f"WHERE {_CONV} AND message_index < $4::integer "
            "ORDER BY message_index DESC LIMIT $5::integer"
        )

    def _sessions_page(self, cursor: str) -> str:
        # One pass over the user's rows picks the page's sessions (grouped by
        # session, the newest ``limit`` groups kept); LATERAL then reads each
        # one's (session, agent) counts by key, rather than the planner
        # joining the user's rows a second time. Session ids compare as in
        # Python (by code point: COLLATE "C" on UTF-8), whatever the
        # database's collation.
        return (
            f"WITH page AS (SELECT session_id FROM {self._s}.conversations "
            f"WHERE user_id = $1::text GROUP BY session_id{cursor} "
            'ORDER BY max("timestamp") DESC, session_id COLLATE "C" LIMIT $2::integer) '
            "SELECT page.session_id, a.agent_id, a.n, a.last FROM page CROSS JOIN LATERAL ("
            'SELECT agent_id, count(*) AS n, max("timestamp") AS last '
            f"FROM {self._s}.conversations c "
            "WHERE c.user_id = $1::text AND c.session_id = page.session_id "
            "GROUP BY agent_id) a"
        )

    @cached_property
    def sessions_page_first(self) -> str:
        """(user, limit) -> the rows of `sessions` (any order) for the first
        ``limit`` sessions (NULL: all) in ``list_sessions`` order."""
        return self._sessions_page("")

    @cached_property
    def sessions_page_after(self) -> str:
        """(user, limit, last_timestamp, session_id) -> as `sessions_page_first`,
        for the sessions after that cursor in ``list_sessions`` order."""
        return self._sessions_page(
            ' HAVING max("timestamp") < $3::bigint OR (max("timestamp") = $3::bigint '
            'AND session_id COLLATE "C" > $4::text COLLATE "C")'
        )

    @cached_property
    def session(self) -> str:
        """(user, session) -> every row of the session, any order."""
        return (
            f"SELECT {_COLUMNS} FROM {self._s}.conversations "
            "WHERE user_id = $1::text AND session_id = $2::text"
        )

    @cached_property
    def sessions(self) -> str:
        """(user) -> per (session, agent): message count and last timestamp."""
        return (
            'SELECT session_id, agent_id, count(*), max("timestamp") '
            f"FROM {self._s}.conversations WHERE user_id = $1::text "
            "GROUP BY session_id, agent_id"
        )

    def _with_requests(self, where: str) -> str:
        """Deletes the rows matching ``where`` and, in the same statement, the
        records of their requests; its status counts the rows."""
        return (
            f"WITH r AS (DELETE FROM {self._s}.storage_core_requests WHERE {where}) "
            f"DELETE FROM {self._s}.conversations WHERE {where}"
        )

    @cached_property
    def delete_session(self) -> str:
        return self._with_requests("user_id = $1::text AND session_id = $2::text")

    @cached_property
    def delete_conversation(self) -> str:
        return self._with_requests(_CONV)

    @cached_property
    def delete_user(self) -> str:
        return self._with_requests("user_id = $1::text")

    # -- whole-table tools (export, import, prune, doctor) -----------------

    @cached_property
    def export_first(self) -> str:
        """(limit) -> the first rows of the table in key order."""
        return (
            f"SELECT {_TABLE_COLUMNS} FROM {self._s}.conversations "
            f"{_TABLE_ORDER} LIMIT $1::integer"
        )

    @cached_property
    def export_after(self) -> str:
        """(user, session, agent, index, limit) -> the rows after that key, in key order."""
        return (
            f"SELECT {_TABLE_COLUMNS} FROM {self._s}.conversations "
            "WHERE (user_id, session_id, agent_id, message_index) > "
            "($1::text, $2::text, $3::text, $4::integer) "
            f"{_TABLE_ORDER} LIMIT $5::integer"
        )

    @cached_property
    def import_rows(self) -> str:
        """(users, sessions, agents, indexes, roles, contents, timestamps), all
        text[] -> inserts the rows as they are; an existing key is left alone."""
        return (
            f"INSERT INTO {self._s}.conversations ({_TABLE_COLUMNS}) "
            "SELECT u, s, a, i::integer, r, c, t::bigint FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
            "$7::text[]) AS x(u, s, a, i, r, c, t) "
            "ON CONFLICT (user_id, session_id, agent_id, message_index) DO NOTHING"
        )

    @cached_property
    def prune(self) -> str:
        """(timestamp) -> deletes the conversations with no message since then."""
        return (
            f"WITH old AS (SELECT user_id, session_id, agent_id FROM {self._s}.conversations "
            'GROUP BY user_id, session_id, agent_id HAVING max("timestamp") < $1::bigint), '
            f"r AS (DELETE FROM {self._s}.storage_core_requests q USING old "
            "WHERE q.user_id = old.user_id AND q.session_id = old.session_id "
            "AND q.agent_id = old.agent_id) "
            f"DELETE FROM {self._s}.conversations c USING old "
            "WHERE c.user_id = old.user_id AND c.session_id = old.session_id "
            "AND c.agent_id = old.agent_id"
        )

    @cached_property
    def describe(self) -> str:
        """() -> schema version, index names (comma-separated), row count, server version."""
        return (
            f"SELECT (SELECT value FROM {self._s}.storage_core_meta "
            "WHERE key = 'schema_version'), "
            "(SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
            f"WHERE schemaname = '{self.schema}' AND tablename = 'conversations'), "
            f"(SELECT count(*) FROM {self._s}.conversations), "
            "current_setting('server_version')"
        )
