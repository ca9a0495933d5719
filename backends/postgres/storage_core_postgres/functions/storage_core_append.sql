-- storage_core_append: one save of a batch (see storage_core.backend.AppendRequest).
--
-- Lock, check the last role, insert, trim and read as separate statements:
-- under READ COMMITTED each statement takes a fresh snapshot, so everything
-- after the lock sees every save committed before it was granted (one SQL
-- statement would keep the snapshot it took before waiting for the lock).
-- Indexes may have gaps (imported conversations, rows deleted by hand), so a
-- trim counts rows: the oldest row and the keep-th newest (the cut, walking
-- the primary key backwards) bound a primary-key range delete, and the
-- history is read as a range of the primary key from the cut. The batch's
-- arrays are walked once with unnest (a subscript of a text[] walks it from
-- the start each time).
--
-- Exactly-once: with p_replay, a record of p_request in storage_core_requests
-- means an earlier try was committed: kind 2 reports it (first index, kind,
-- row count), kind 1 the history as that save left it, and nothing is stored
-- or trimmed again. A save that stores rows records them and keeps the
-- conversation's newest 100 records.
--
-- Result rows: kind 0 for each stored row (content left out: the caller has
-- it), then kind 1 for the history, oldest first.
--
-- @SCHEMA@ is the only substitution: the validated schema name, quoted.
-- The lock seed (1544470750 = 0x5C0EC0DE), the SQLSTATEs and the bound of
-- 100 are storage_core_postgres.sql's constants; a test checks they agree.

CREATE OR REPLACE FUNCTION @SCHEMA@.storage_core_append(
    p_user text, p_session text, p_agent text,
    p_roles text[], p_contents text[], p_timestamps bigint[],
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer,
    p_request text, p_replay boolean)
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
    v_rkind text;
    v_rfirst integer;
    v_rcount integer := 0;
BEGIN
    -- Saves to one conversation queue here until the saving transaction ends.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        length(p_user) || ':' || p_user || length(p_session) || ':' || p_session || p_agent,
        1544470750));
    IF p_replay THEN
        SELECT r.kind, r.first_index, r.row_count INTO v_rkind, v_rfirst, v_rcount
        FROM @SCHEMA@.storage_core_requests r
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
                      FROM @SCHEMA@.conversations c
                      WHERE c.user_id = p_user AND c.session_id = p_session
                        AND c.agent_id = p_agent AND c.message_index < v_rfirst + v_rcount
                      ORDER BY c.message_index DESC LIMIT p_history_limit) h
                ORDER BY h.message_index;
        END IF;
        RETURN;
    ELSE
    SELECT c.message_index, c.role INTO v_last, v_last_role
    FROM @SCHEMA@.conversations c
    WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
    ORDER BY c.message_index DESC LIMIT 1;
    v_last := coalesce(v_last, -1);
    IF p_skip_same_role AND v_count > 0 AND v_last_role = p_roles[1] THEN
        v_first := 2;
    END IF;

    -- kind 0: what was stored (content left out: the caller has it).
    IF v_count >= v_first THEN
        INSERT INTO @SCHEMA@.conversations
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
        IF p_request IS NOT NULL AND v_rcount > 0 THEN
            WITH rec AS (
                INSERT INTO @SCHEMA@.storage_core_requests
                    (user_id, session_id, agent_id, seq, request_id, kind, first_index,
                     row_count)
                SELECT p_user, p_session, p_agent, coalesce(max(r.seq), 0) + 1, p_request,
                       'append', v_rfirst, v_rcount
                FROM @SCHEMA@.storage_core_requests r
                WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
                RETURNING seq)
            DELETE FROM @SCHEMA@.storage_core_requests r
            WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
              AND r.seq <= (SELECT seq FROM rec) - 100;
        END IF;
    END IF;

    IF p_keep IS NOT NULL THEN
        -- The oldest row first, from the low end of the primary key (entries
        -- of rows trimmed before are skipped cheaply), so that the delete
        -- names both ends of its range: a primary-key range scan. With one
        -- end only, stale statistics (still counting rows trimmed since)
        -- make the planner scan the whole conversation on every save.
        SELECT (SELECT c.message_index FROM @SCHEMA@.conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index LIMIT 1),
               (SELECT c.message_index FROM @SCHEMA@.conversations c
                WHERE c.user_id = p_user AND c.session_id = p_session
                  AND c.agent_id = p_agent
                ORDER BY c.message_index DESC OFFSET p_keep - 1 LIMIT 1)
        INTO v_oldest, v_cut;
        IF v_oldest < v_cut THEN
            DELETE FROM @SCHEMA@.conversations c
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
            FROM @SCHEMA@.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index >= v_cut
            ORDER BY c.message_index;
    ELSIF p_history AND p_history_limit IS NULL THEN
        RETURN QUERY
            SELECT 1::smallint, c.agent_id, c.message_index, c.role, c.content, c."timestamp"
            FROM @SCHEMA@.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
            ORDER BY c.message_index;
    ELSIF p_history THEN
        RETURN QUERY
            SELECT 1::smallint, h.agent_id, h.message_index, h.role, h.content, h."timestamp"
            FROM (SELECT c.agent_id, c.message_index, c.role, c.content, c."timestamp"
                  FROM @SCHEMA@.conversations c
                  WHERE c.user_id = p_user AND c.session_id = p_session
                    AND c.agent_id = p_agent
                  ORDER BY c.message_index DESC LIMIT p_history_limit) h
            ORDER BY h.message_index;
    END IF;
    RETURN;
END
$storage_core$;
