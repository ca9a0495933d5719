-- storage_core_append_one: storage_core_append for one row, with scalars
-- (building and reading one-element arrays cost more than the rest of the
-- function). The role check, the next index and the insert are one
-- statement, whose snapshot is taken after the lock was granted.
--
-- @SCHEMA@ is the only substitution (see storage_core_append.sql).

CREATE OR REPLACE FUNCTION @SCHEMA@.storage_core_append_one(
    p_user text, p_session text, p_agent text,
    p_role text, p_content text, p_timestamp bigint,
    p_skip_same_role boolean, p_keep integer, p_history boolean, p_history_limit integer,
    p_request text, p_replay boolean)
RETURNS TABLE (r_kind smallint, r_agent_id text, r_index integer, r_role text,
               r_content text, r_timestamp bigint)
LANGUAGE plpgsql VOLATILE AS $storage_core$
DECLARE
    v_last integer;
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
    INSERT INTO @SCHEMA@.conversations
        (user_id, session_id, agent_id, message_index, role, content, "timestamp")
    SELECT p_user, p_session, p_agent, coalesce(l.message_index, -1) + 1,
           p_role, p_content, p_timestamp
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT c.message_index, c.role FROM @SCHEMA@.conversations c
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
