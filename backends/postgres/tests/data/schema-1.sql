-- The schema storage-core-postgres 0.1.0 (schema version 1, append revision 6)
-- created, for the upgrade tests; SCHEMA_NAME stands for the schema.
SELECT pg_advisory_xact_lock(1544429022);
DO $storage_core$ BEGIN
    IF to_regnamespace('"SCHEMA_NAME"') IS NULL THEN CREATE SCHEMA "SCHEMA_NAME"; END IF;
END $storage_core$;
CREATE TABLE IF NOT EXISTS "SCHEMA_NAME".conversations (
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    "timestamp" BIGINT NOT NULL,
    PRIMARY KEY (user_id, session_id, agent_id, message_index)
);
CREATE INDEX IF NOT EXISTS idx_conversations_lookup
    ON "SCHEMA_NAME".conversations (user_id, session_id, agent_id);
CREATE TABLE IF NOT EXISTS "SCHEMA_NAME".storage_core_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE OR REPLACE FUNCTION "SCHEMA_NAME".storage_core_append(
    p_user text, p_session text, p_agent text,
    p_roles text[], p_contents text[], p_timestamps bigint[],
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer)
RETURNS TABLE (r_kind smallint, r_agent_id text, r_index integer, r_role text,
               r_content text, r_timestamp bigint)
LANGUAGE plpgsql VOLATILE AS $storage_core$
DECLARE
    v_count integer := coalesce(cardinality(p_roles), 0);
    v_first integer := 1;
    v_last integer;
    v_last_role text;
    v_oldest integer;
    v_cut integer;
BEGIN
    -- Saves to one conversation queue here until the saving transaction ends.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        length(p_user) || ':' || p_user || length(p_session) || ':' || p_session || p_agent,
        1544470750));

    SELECT c.message_index, c.role INTO v_last, v_last_role
    FROM "SCHEMA_NAME".conversations c
    WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
    ORDER BY c.message_index DESC LIMIT 1;
    v_last := coalesce(v_last, -1);
    IF p_skip_same_role AND v_count > 0 AND v_last_role = p_roles[1] THEN
        v_first := 2;
    END IF;

    -- kind 0: what was stored (content left out: the caller has it).
    IF v_count >= v_first THEN
        INSERT INTO "SCHEMA_NAME".conversations
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

    IF p_keep IS NOT NULL THEN
        -- The oldest row first, from the low end of the primary key (entries
        -- of rows trimmed before are skipped cheaply), so that the delete
        -- names both ends of its range: a primary-key range scan. With one
        -- end only, stale statistics (still counting rows trimmed since)
        -- make the planner scan the whole conversation on every save.
        SELECT (SELECT c.message_index FROM "SCHEMA_NAME".conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index LIMIT 1),
               (SELECT c.message_index FROM "SCHEMA_NAME".conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index DESC OFFSET p_keep - 1 LIMIT 1)
        INTO v_oldest, v_cut;
        IF v_oldest < v_cut THEN
            DELETE FROM "SCHEMA_NAME".conversations c
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
            FROM "SCHEMA_NAME".conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index >= v_cut
            ORDER BY c.message_index;
    ELSIF p_history AND p_history_limit IS NULL THEN
        RETURN QUERY
            SELECT 1::smallint, c.agent_id, c.message_index, c.role, c.content, c."timestamp"
            FROM "SCHEMA_NAME".conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
            ORDER BY c.message_index;
    ELSIF p_history THEN
        RETURN QUERY
            SELECT 1::smallint, h.agent_id, h.message_index, h.role, h.content, h."timestamp"
            FROM (SELECT c.agent_id, c.message_index, c.role, c.content, c."timestamp"
                  FROM "SCHEMA_NAME".conversations c
                  WHERE c.user_id = p_user AND c.session_id = p_session
                    AND c.agent_id = p_agent
                  ORDER BY c.message_index DESC LIMIT p_history_limit) h
            ORDER BY h.message_index;
    END IF;
    RETURN;
END
$storage_core$;
CREATE OR REPLACE FUNCTION "SCHEMA_NAME".storage_core_append_one(
    p_user text, p_session text, p_agent text,
    p_role text, p_content text, p_timestamp bigint,
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer)
RETURNS TABLE (r_kind smallint, r_agent_id text, r_index integer, r_role text,
               r_content text, r_timestamp bigint)
LANGUAGE plpgsql VOLATILE AS $storage_core$
DECLARE
    v_last integer;
    v_oldest integer;
    v_cut integer;
BEGIN
    -- Saves to one conversation queue here until the saving transaction ends.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        length(p_user) || ':' || p_user || length(p_session) || ':' || p_session || p_agent,
        1544470750));
    INSERT INTO "SCHEMA_NAME".conversations
        (user_id, session_id, agent_id, message_index, role, content, "timestamp")
    SELECT p_user, p_session, p_agent, coalesce(l.message_index, -1) + 1,
           p_role, p_content, p_timestamp
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT c.message_index, c.role FROM "SCHEMA_NAME".conversations c
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

    IF p_keep IS NOT NULL THEN
        -- The oldest row first, from the low end of the primary key (entries
        -- of rows trimmed before are skipped cheaply), so that the delete
        -- names both ends of its range: a primary-key range scan. With one
        -- end only, stale statistics (still counting rows trimmed since)
        -- make the planner scan the whole conversation on every save.
        SELECT (SELECT c.message_index FROM "SCHEMA_NAME".conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index LIMIT 1),
               (SELECT c.message_index FROM "SCHEMA_NAME".conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index DESC OFFSET p_keep - 1 LIMIT 1)
        INTO v_oldest, v_cut;
        IF v_oldest < v_cut THEN
            DELETE FROM "SCHEMA_NAME".conversations c
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
            FROM "SCHEMA_NAME".conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index >= v_cut
            ORDER BY c.message_index;
    ELSIF p_history AND p_history_limit IS NULL THEN
        RETURN QUERY
            SELECT 1::smallint, c.agent_id, c.message_index, c.role, c.content, c."timestamp"
            FROM "SCHEMA_NAME".conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
            ORDER BY c.message_index;
    ELSIF p_history THEN
        RETURN QUERY
            SELECT 1::smallint, h.agent_id, h.message_index, h.role, h.content, h."timestamp"
            FROM (SELECT c.agent_id, c.message_index, c.role, c.content, c."timestamp"
                  FROM "SCHEMA_NAME".conversations c
                  WHERE c.user_id = p_user AND c.session_id = p_session
                    AND c.agent_id = p_agent
                  ORDER BY c.message_index DESC LIMIT p_history_limit) h
            ORDER BY h.message_index;
    END IF;
    RETURN;
END
$storage_core$;
CREATE OR REPLACE FUNCTION "SCHEMA_NAME".storage_core_pop(p_user text, p_session text, p_agent text)
RETURNS TABLE (r_agent_id text, r_index integer, r_role text, r_content text,
               r_timestamp bigint)
LANGUAGE plpgsql VOLATILE AS $storage_core$
BEGIN
    -- Saves to one conversation queue here until the saving transaction ends.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        length(p_user) || ':' || p_user || length(p_session) || ':' || p_session || p_agent,
        1544470750));

    RETURN QUERY
        WITH popped AS (
            DELETE FROM "SCHEMA_NAME".conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index = (
                  SELECT n.message_index FROM "SCHEMA_NAME".conversations n
                  WHERE n.user_id = p_user AND n.session_id = p_session
                    AND n.agent_id = p_agent
                  ORDER BY n.message_index DESC LIMIT 1)
            RETURNING c.agent_id, c.message_index, c.role, c.content, c."timestamp")
        SELECT * FROM popped;
END
$storage_core$;
COMMENT ON FUNCTION "SCHEMA_NAME".storage_core_append(text, text, text, text[], text[], bigint[], boolean, integer, boolean, integer) IS 'storage_core schema 1, append revision 6';
COMMENT ON FUNCTION "SCHEMA_NAME".storage_core_append_one(text, text, text, text, text, bigint, boolean, integer, boolean, integer) IS 'storage_core schema 1, append revision 6';
COMMENT ON FUNCTION "SCHEMA_NAME".storage_core_pop(text, text, text) IS 'storage_core schema 1, append revision 6';
INSERT INTO "SCHEMA_NAME".storage_core_meta (key, value)
    VALUES ('schema_version', '1')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
