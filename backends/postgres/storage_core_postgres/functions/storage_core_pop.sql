-- storage_core_pop: delete the conversation's newest row and return it.
--
-- It takes the saves' lock, then deletes the newest row in a later
-- statement: its snapshot is taken once the lock is granted, so it sees the
-- row another pop deleted just before (one DELETE with a subquery for the
-- newest index, racing another pop, would find its row gone and return
-- nothing while older rows remain). With a request id the popped row is
-- recorded; replayed, the recorded row is returned and nothing is popped.
--
-- @SCHEMA@ is the only substitution (see storage_core_append.sql).

CREATE OR REPLACE FUNCTION @SCHEMA@.storage_core_pop(
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
    -- Saves to one conversation queue here until the saving transaction ends.
    PERFORM pg_advisory_xact_lock(hashtextextended(
        length(p_user) || ':' || p_user || length(p_session) || ':' || p_session || p_agent,
        1544470750));
    IF p_replay THEN
        SELECT r.kind, r.first_index, r.role, r.content, r."timestamp"
        INTO v_rkind, v_rfirst, v_role, v_content, v_ts
        FROM @SCHEMA@.storage_core_requests r
        WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
          AND r.request_id = p_request;
        IF v_rkind = 'pop' THEN
            RETURN QUERY SELECT p_agent, v_rfirst, v_role, v_content, v_ts;
            RETURN;
        ELSIF v_rkind IS NOT NULL THEN
            RAISE EXCEPTION 'storage_core: request_id % was used for another call (%)',
                quote_literal(p_request),
                CASE v_rkind WHEN 'append' THEN 'an append' ELSE v_rkind END
                USING ERRCODE = 'SCR01';
        END IF;
    END IF;

    RETURN QUERY
        WITH popped AS (
            DELETE FROM @SCHEMA@.conversations c
            WHERE c.user_id = p_user AND c.session_id = p_session AND c.agent_id = p_agent
              AND c.message_index = (
                  SELECT n.message_index FROM @SCHEMA@.conversations n
                  WHERE n.user_id = p_user AND n.session_id = p_session
                    AND n.agent_id = p_agent
                  ORDER BY n.message_index DESC LIMIT 1)
            RETURNING c.agent_id, c.message_index, c.role, c.content, c."timestamp"),
        rec AS (
            INSERT INTO @SCHEMA@.storage_core_requests
                (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count,
                 role, content, "timestamp")
            SELECT p_user, p_session, p_agent,
                   (SELECT coalesce(max(r.seq), 0) + 1 FROM @SCHEMA@.storage_core_requests r
                    WHERE r.user_id = p_user AND r.session_id = p_session
                      AND r.agent_id = p_agent),
                   p_request, 'pop', p.message_index, 1, p.role, p.content, p."timestamp"
            FROM popped p WHERE p_request IS NOT NULL
            RETURNING seq),
        bound AS (
            DELETE FROM @SCHEMA@.storage_core_requests r
            WHERE r.user_id = p_user AND r.session_id = p_session AND r.agent_id = p_agent
              AND r.seq <= (SELECT seq FROM rec) - 100)
        SELECT * FROM popped;
END
$storage_core$;
