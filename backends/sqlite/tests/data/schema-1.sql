-- The schema storage-core-sqlite 0.1.0 (schema version 1) created, for the upgrade tests.
CREATE TABLE IF NOT EXISTS conversations (
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (user_id, session_id, agent_id, message_index)
);
CREATE INDEX IF NOT EXISTS idx_conversations_lookup
    ON conversations(user_id, session_id, agent_id);
CREATE TABLE IF NOT EXISTS storage_core_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO storage_core_meta (key, value)
    VALUES ('schema_version', '1');
