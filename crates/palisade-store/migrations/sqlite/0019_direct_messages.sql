-- Direct messages (SOC-3): conversations, their members with a read marker each, and messages
-- numbered per conversation (the history's cursor and the read marker's unit).
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE conversation_members (
    conversation_id  TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    read_seq         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user ON conversation_members(user_id);
CREATE TABLE messages (
    conversation_id  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    sender_id        TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
