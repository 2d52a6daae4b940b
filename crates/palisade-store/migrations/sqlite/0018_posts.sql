-- Posts (SOC-2): visibility public, followers or private; hidden by a moderator; newest first
-- per author for the home timeline.
CREATE TABLE posts (
    id          TEXT PRIMARY KEY,
    author_id   TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    body        TEXT NOT NULL,
    visibility  TEXT NOT NULL,
    hidden      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX posts_author_time ON posts(author_id, created_at);
