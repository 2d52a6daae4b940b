-- Real-time messaging (RTM-4, RTM-7). A message's idempotency key: a retried send (over REST or
-- a socket, on any node) finds the message it stored the first time instead of storing it
-- twice. The key is the sender's own, so it is unique per sender and conversation.
ALTER TABLE messages ADD COLUMN client_key TEXT;
CREATE UNIQUE INDEX messages_client_key ON messages(conversation_id, sender_id, client_key);
-- How far each member's devices have received a conversation (client acknowledgements),
-- beside how far the member has read it.
ALTER TABLE conversation_members ADD COLUMN delivered_seq BIGINT NOT NULL DEFAULT 0;
-- Durable streams of events that are not messages (a user's notifications, an author's posts),
-- numbered per stream without gaps: the offsets a client resumes from.
CREATE TABLE realtime_events (
    stream      TEXT NOT NULL,
    "offset"    BIGINT NOT NULL,
    audience    TEXT,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (stream, "offset")
);
