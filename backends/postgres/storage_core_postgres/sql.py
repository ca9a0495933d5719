"""The SQL of the PostgreSQL backend, for one schema.

Statements use ``$n`` parameters with explicit casts, so the same text runs
as a prepared statement or, behind a transaction-mode pooler, with the values
inlined as literals (`storage_core_postgres.wire`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

__all__ = ["APPEND_REVISION", "SCHEMA_VERSION", "Statements"]

SCHEMA_VERSION = 1

# Advisory lock keys: the DDL of initialize(), and the seed of the
# per-conversation lock keys (both transaction-scoped, so poolers keep them).
_INIT_LOCK = 0x5C0E_1DDE
_CONVERSATION_SEED = 0x5C0E_C0DE

_APPEND_ARGS = "text, text, text, text[], text[], bigint[], boolean, integer, boolean, integer"
_APPEND_ONE_ARGS = "text, text, text, text, text, bigint, boolean, integer, boolean, integer"

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
APPEND_REVISION = 6

# Lock, check the last role, insert, trim and read as separate statements:
# under READ COMMITTED each statement takes a fresh snapshot, so everything
# after the lock sees every save committed before it was granted. (One SQL
# statement would keep the snapshot it took before waiting for the lock.)
#
# Indexes may have gaps (conversations imported with gaps, rows deleted by
# hand or by other tools), so a trim counts rows: one statement finds the
# oldest row and the keep-th newest (the cut, walking the primary key
# backwards p_keep entries), and the delete removes the primary-key range
# between them. When the history limit is the trim's (as the core always
# asks) the history is exactly the rows the trim kept, read as a range of
# the primary key from the cut. That also keeps the read off the lookup
# index and a sort, which the planner may prefer while the table's
# statistics are missing or stale. A batch walks its arrays once with unnest
# (a subscript of a text[] walks it from the start each time); a single row
# goes to storage_core_append_one, which takes scalars: building and reading
# one-element arrays cost more than the rest of the function.
_RESULT_TABLE = """\
RETURNS TABLE (r_kind smallint, r_agent_id text, r_index integer, r_role text,
               r_content text, r_timestamp bigint)
LANGUAGE plpgsql VOLATILE AS $storage_core$
"""

_LOCK = """\
    -- Saves to one conversation queue here until the saving transaction ends.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        length(p_user) || ':' || p_user || length(p_session) || ':' || p_session || p_agent,
        {seed}));
"""

_LOCK_AND_LAST = _LOCK + """\

    SELECT c.message_index, c.role INTO v_last, v_last_role
    FROM {s}.conversations c
    WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
    ORDER BY c.message_index DESC LIMIT 1;
    v_last := coalesce(v_last, -1);
"""

_TRIM_AND_HISTORY = """\
    IF p_keep IS NOT NULL THEN
        -- The oldest row first, from the low end of the primary key (entries
        -- of rows trimmed before are skipped cheaply), so that the delete
        -- names both ends of its range: a primary-key range scan. With one
        -- end only, stale statistics (still counting rows trimmed since)
        -- make the planner scan the whole conversation on every save.
        SELECT (SELECT c.message_index FROM {s}.conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index LIMIT 1),
               (SELECT c.message_index FROM {s}.conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index DESC OFFSET p_keep - 1 LIMIT 1)
        INTO v_oldest, v_cut;
        IF v_oldest < v_cut THEN
            DELETE FROM {s}.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index BETWEEN v_oldest AND v_cut - 1;
        END IF;
        -- Fewer than p_keep rows: no cut, the whole conversation is kept.
        v_cut := coalesce(v_cut, v_oldest);
    END IF;

    -- kind 1: the newest p_history_limit rows (all if NULL), oldest first.
    IF p_history AND p_history_limit = p_keep THEN
        RETURN QUERY
            SELECT 1::smallint, c.agent_id, c.message_index, c.role, c.content, c."timestamp"
            FROM {s}.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index >= v_cut
            ORDER BY c.message_index;
    ELSIF p_history AND p_history_limit IS NULL THEN
        RETURN QUERY
            SELECT 1::smallint, c.agent_id, c.message_index, c.role, c.content, c."timestamp"
            FROM {s}.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
            ORDER BY c.message_index;
    ELSIF p_history THEN
        RETURN QUERY
            SELECT 1::smallint, h.agent_id, h.message_index, h.role, h.content, h."timestamp"
            FROM (SELECT c.agent_id, c.message_index, c.role, c.content, c."timestamp"
                  FROM {s}.conversations c
                  WHERE c.user_id = p_user AND c.session_id = p_session
                    AND c.agent_id = p_agent
                  ORDER BY c.message_index DESC LIMIT p_history_limit) h
            ORDER BY h.message_index;
    END IF;
    RETURN;
END
$storage_core$"""

_APPEND_FUNCTION = """\
CREATE OR REPLACE FUNCTION {s}.storage_core_append(
    p_user text, p_session text, p_agent text,
    p_roles text[], p_contents text[], p_timestamps bigint[],
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer)
""" + _RESULT_TABLE + """\
DECLARE
    v_count integer := coalesce(cardinality(p_roles), 0);
    v_first integer := 1;
    v_last integer;
    v_last_role text;
    v_oldest integer;
    v_cut integer;
BEGIN
""" + _LOCK_AND_LAST + """\
    IF p_skip_same_role AND v_count > 0 AND v_last_role = p_roles[1] THEN
        v_first := 2;
    END IF;

    -- kind 0: what was stored (content left out: the caller has it).
    IF v_count >= v_first THEN
        INSERT INTO {s}.conversations
            (user_id, session_id, agent_id, message_index, role, content, "timestamp")
        SELECT p_user, p_session, p_agent, (v_last + 1 + u.i - v_first)::integer,
               u.role, u.content, u.ts
        FROM unnest(p_roles, p_contents, p_timestamps) WITH ORDINALITY AS u(role, content, ts, i)
        WHERE u.i >= v_first;
        RETURN QUERY
            SELECT 0::smallint, p_agent, (v_last + 1 + u.i - v_first)::integer, u.role,
                   NULL::text, u.ts
            FROM unnest(p_roles, p_timestamps) WITH ORDINALITY AS u(role, ts, i)
            WHERE u.i >= v_first;
    END IF;

""" + _TRIM_AND_HISTORY

# One row: the role check, the next index and the insert are one statement
# (its snapshot is taken after the lock was granted), as each statement of a
# PL/pgSQL function costs the server about as much as a bare INSERT.
_APPEND_ONE_FUNCTION = """\
CREATE OR REPLACE FUNCTION {s}.storage_core_append_one(
    p_user text, p_session text, p_agent text,
    p_role text, p_content text, p_timestamp bigint,
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer)
""" + _RESULT_TABLE + """\
DECLARE
    v_last integer;
    v_oldest integer;
    v_cut integer;
BEGIN
""" + _LOCK + """\
    INSERT INTO {s}.conversations
        (user_id, session_id, agent_id, message_index, role, content, "timestamp")
    SELECT p_user, p_session, p_agent, coalesce(l.message_index, -1) + 1,
           p_role, p_content, p_timestamp
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT c.message_index, c.role FROM {s}.conversations c
        WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
        ORDER BY c.message_index DESC LIMIT 1) AS l ON true
    WHERE NOT (p_skip_same_role AND l.role IS NOT DISTINCT FROM p_role)
    RETURNING message_index INTO v_last;

    IF v_last IS NOT NULL THEN
        -- kind 0: what was stored (content left out: the caller has it).
        r_kind := 0;
        r_agent_id := p_agent;
        r_index := v_last;
        r_role := p_role;
        r_content := NULL;
        r_timestamp := p_timestamp;
        RETURN NEXT;
    ELSIF p_keep IS NULL AND NOT p_history THEN
        RETURN;  -- the role rule left the row out, and nothing else is asked
    END IF;

""" + _TRIM_AND_HISTORY

# A pop takes the saves' lock, then deletes the newest row in a later
# statement: its snapshot is taken once the lock is granted, so it sees the
# row another pop deleted just before (one DELETE with a subquery for the
# newest index, racing another pop, would find its row gone and return
# nothing while older rows remain).
_POP_FUNCTION = """\
CREATE OR REPLACE FUNCTION {s}.storage_core_pop(p_user text, p_session text, p_agent text)
RETURNS TABLE (r_agent_id text, r_index integer, r_role text, r_content text,
               r_timestamp bigint)
LANGUAGE plpgsql VOLATILE AS $storage_core$
BEGIN
""" + _LOCK + """\

    RETURN QUERY
        WITH popped AS (
            DELETE FROM {s}.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index = (
                  SELECT n.message_index FROM {s}.conversations n
                  WHERE n.user_id = p_user AND n.session_id = p_session
                    AND n.agent_id = p_agent
                  ORDER BY n.message_index DESC LIMIT 1)
            RETURNING c.agent_id, c.message_index, c.role, c.content, c."timestamp")
        SELECT * FROM popped;
END
$storage_core$"""

_FUNCTIONS = (
    ("storage_core_append", _APPEND_ARGS),
    ("storage_core_append_one", _APPEND_ONE_ARGS),
    ("storage_core_pop", "text, text, text"),
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
        return f"SELECT to_regclass('\"{s}\".conversations') IS NOT NULL AND " + " AND ".join(
            described
        )

    @cached_property
    def schema_script(self) -> str:
        """Creates or upgrades everything, as one implicit transaction that
        first takes an advisory lock, so concurrent initializations queue."""
        s = self._s
        return ";\n".join(
            [
                f"SELECT pg_advisory_xact_lock({_INIT_LOCK})",
                f"""DO $storage_core$ BEGIN
    IF to_regnamespace('{s}') IS NULL THEN CREATE SCHEMA {s}; END IF;
END $storage_core$""",
                # The table and index of the original SQL storage, unchanged.
                f"""CREATE TABLE IF NOT EXISTS {s}.conversations (
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    "timestamp" BIGINT NOT NULL,
    PRIMARY KEY (user_id, session_id, agent_id, message_index)
)""",
                f"""CREATE INDEX IF NOT EXISTS idx_conversations_lookup
    ON {s}.conversations (user_id, session_id, agent_id)""",
                # Additive: the schema version, and the save function.
                f"""CREATE TABLE IF NOT EXISTS {s}.storage_core_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
                _APPEND_FUNCTION.format(s=s, seed=_CONVERSATION_SEED),
                _APPEND_ONE_FUNCTION.format(s=s, seed=_CONVERSATION_SEED),
                _POP_FUNCTION.format(s=s, seed=_CONVERSATION_SEED),
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
            "$9::boolean, $10::integer)"
        )

    @cached_property
    def append_one(self) -> str:
        """`append` of one row, given as (user, session, agent, role,
        content, timestamp, ...): scalars, to storage_core_append_one."""
        return (
            f"SELECT * FROM {self._s}.storage_core_append_one($1::text, $2::text, $3::text, "
            "$4::text, $5::text, $6::bigint, $7::boolean, $8::integer, "
            "$9::boolean, $10::integer)"
        )

    @cached_property
    def pop(self) -> str:
        """(user, session, agent) -> the newest row, deleted (no row: the
        conversation is empty), in `newest`'s columns."""
        return (
            f"SELECT * FROM {self._s}.storage_core_pop($1::text, $2::text, $3::text)"
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

    @cached_property
    def delete_session(self) -> str:
        return (
            f"DELETE FROM {self._s}.conversations "
            "WHERE user_id = $1::text AND session_id = $2::text"
        )

    @cached_property
    def delete_conversation(self) -> str:
        return f"DELETE FROM {self._s}.conversations WHERE {_CONV}"

    @cached_property
    def delete_user(self) -> str:
        return f"DELETE FROM {self._s}.conversations WHERE user_id = $1::text"

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
            f"DELETE FROM {self._s}.conversations c USING ("
            f"SELECT user_id, session_id, agent_id FROM {self._s}.conversations "
            'GROUP BY user_id, session_id, agent_id HAVING max("timestamp") < $1::bigint) old '
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
