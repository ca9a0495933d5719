"""The SQL of the PostgreSQL backend, for one schema.

Statements use ``$n`` parameters with explicit casts, so the same text runs
as a prepared statement or, behind a transaction-mode pooler, with the values
inlined as literals (`storage_core_postgres.wire`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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

# Exactly-once writes: with p_replay, a record of p_request means an earlier
# try was committed: kind 2 reports it (first index, kind, row count), kind 1
# the history as it left it, and nothing is stored or trimmed again. Looked
# up after the lock, so a try still running has committed or rolled back by then.
_REPLAY = """\
    IF p_replay THEN
        SELECT r.kind, r.first_index, r.row_count INTO v_rkind, v_rfirst, v_rcount
        FROM {s}.storage_core_requests r
        WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
          AND r.request_id = p_request;
    END IF;
    IF v_rkind IS NOT NULL THEN
        r_kind := 2;
        r_agent_id := p_agent;
        r_index := v_rfirst;
        r_role := v_rkind;
        r_content := NULL;
        r_timestamp := v_rcount;
        RETURN NEXT;
        -- kind 1: the history as that save left it (up to its last row).
        IF p_history THEN
            RETURN QUERY
                SELECT 1::smallint, h.agent_id, h.message_index, h.role, h.content,
                       h."timestamp"
                FROM (SELECT c.agent_id, c.message_index, c.role, c.content, c."timestamp"
                      FROM {s}.conversations c
                      WHERE c.user_id = p_user AND c.session_id = p_session
                        AND c.agent_id = p_agent AND c.message_index < v_rfirst + v_rcount
                      ORDER BY c.message_index DESC LIMIT p_history_limit) h
                ORDER BY h.message_index;
        END IF;
        RETURN;
    ELSE
"""

# The record of a save that stored rows (v_rfirst, v_rcount), and the bound:
# one statement (the delete does not see the row inserted beside it).
_RECORD = """\
        IF p_request IS NOT NULL AND v_rcount > 0 THEN
            WITH rec AS (
                INSERT INTO {s}.storage_core_requests
                    (user_id, session_id, agent_id, seq, request_id, kind, first_index,
                     row_count)
                SELECT p_user, p_session, p_agent, coalesce(max(r.seq), 0) + 1, p_request,
                       'append', v_rfirst, v_rcount
                FROM {s}.storage_core_requests r
                WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
                RETURNING seq)
            DELETE FROM {s}.storage_core_requests r
            WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
              AND r.seq <= (SELECT seq FROM rec) - {remembered};
        END IF;
    END IF;
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
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer,
    p_request text, p_replay boolean)
""" + _RESULT_TABLE + """\
DECLARE
    v_count integer := coalesce(cardinality(p_roles), 0);
    v_first integer := 1;
    v_last integer;
    v_last_role text;
    v_oldest integer;
    v_cut integer;
    v_rkind text;
    v_rfirst integer;
    v_rcount integer := 0;
BEGIN
""" + _LOCK + _REPLAY + """\
    SELECT c.message_index, c.role INTO v_last, v_last_role
    FROM {s}.conversations c
    WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
    ORDER BY c.message_index DESC LIMIT 1;
    v_last := coalesce(v_last, -1);
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
        v_rfirst := v_last + 1;
        v_rcount := v_count - v_first + 1;
    END IF;
""" + _RECORD + """\

""" + _TRIM_AND_HISTORY

# One row: the role check, the next index and the insert are one statement
# (its snapshot is taken after the lock was granted), as each statement of a
# PL/pgSQL function costs the server about as much as a bare INSERT.
_APPEND_ONE_FUNCTION = """\
CREATE OR REPLACE FUNCTION {s}.storage_core_append_one(
    p_user text, p_session text, p_agent text,
    p_role text, p_content text, p_timestamp bigint,
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer,
    p_request text, p_replay boolean)
""" + _RESULT_TABLE + """\
DECLARE
    v_last integer;
    v_oldest integer;
    v_cut integer;
    v_rkind text;
    v_rfirst integer;
    v_rcount integer := 0;
BEGIN
""" + _LOCK + _REPLAY + """\
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
        v_rfirst := v_last;
        v_rcount := 1;
    ELSIF p_keep IS NULL AND NOT p_history THEN
        RETURN;  -- the role rule left the row out, and nothing else is asked
    END IF;
""" + _RECORD + """\

""" + _TRIM_AND_HISTORY

# A pop takes the saves' lock, then deletes the newest row in a later
# statement: its snapshot is taken once the lock is granted, so it sees the
# row another pop deleted just before (one DELETE with a subquery for the
# newest index, racing another pop, would find its row gone and return
# nothing while older rows remain).
_POP_FUNCTION = """\
CREATE OR REPLACE FUNCTION {s}.storage_core_pop(
    p_user text, p_session text, p_agent text, p_request text, p_replay boolean)
RETURNS TABLE (r_agent_id text, r_index integer, r_role text, r_content text,
               r_timestamp bigint)
LANGUAGE plpgsql VOLATILE AS $storage_core$
DECLARE
    v_rkind text;
    v_rfirst integer;
    v_role text;
    v_content text;
    v_ts bigint;
BEGIN
""" + _LOCK + """\
    IF p_replay THEN
        SELECT r.kind, r.first_index, r.role, r.content, r."timestamp"
        INTO v_rkind, v_rfirst, v_role, v_content, v_ts
        FROM {s}.storage_core_requests r
        WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
          AND r.request_id = p_request;
        IF v_rkind = 'pop' THEN
            RETURN QUERY SELECT p_agent, v_rfirst, v_role, v_content, v_ts;
            RETURN;
        ELSIF v_rkind IS NOT NULL THEN
            RAISE EXCEPTION 'storage_core: request_id % was used for another call (%)',
                quote_literal(p_request),
                CASE v_rkind WHEN 'append' THEN 'an append' ELSE v_rkind END
                USING ERRCODE = '{reused}';
        END IF;
    END IF;

    RETURN QUERY
        WITH popped AS (
            DELETE FROM {s}.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index = (
                  SELECT n.message_index FROM {s}.conversations n
                  WHERE n.user_id = p_user AND n.session_id = p_session
                    AND n.agent_id = p_agent
                  ORDER BY n.message_index DESC LIMIT 1)
            RETURNING c.agent_id, c.message_index, c.role, c.content, c."timestamp"),
        rec AS (
            INSERT INTO {s}.storage_core_requests
                (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count,
                 role, content, "timestamp")
            SELECT p_user, p_session, p_agent,
                   (SELECT coalesce(max(r.seq), 0) + 1 FROM {s}.storage_core_requests r
                    WHERE r.user_id = p_user AND r.session_id = p_session
                      AND r.agent_id = p_agent),
                   p_request, 'pop', p.message_index, 1, p.role, p.content, p."timestamp"
            FROM popped p WHERE p_request IS NOT NULL
            RETURNING seq),
        bound AS (
            DELETE FROM {s}.storage_core_requests r
            WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
              AND r.seq <= (SELECT seq FROM rec) - {remembered})
        SELECT * FROM popped;
END
$storage_core$"""

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
                    f.format(s=s, seed=_CONVERSATION_SEED, reused=REUSED_REQUEST,
                             remembered=REQUESTS_REMEMBERED)
                    for f in (_APPEND_FUNCTION, _APPEND_ONE_FUNCTION, _POP_FUNCTION)
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
