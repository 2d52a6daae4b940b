-- The social graph (SOC-1): profiles (private until their owner makes them public), follows,
-- blocks and mutes. Friends are mutual follows. Every row names accounts by id; the tenant of
-- an account is the account's own.
CREATE TABLE profiles (
    user_id       TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    bio           TEXT NOT NULL,
    is_public     INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE TABLE follows (
    follower_id  TEXT NOT NULL,
    followee_id  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows(followee_id);
CREATE TABLE blocks (
    blocker_id  TEXT NOT NULL,
    blocked_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE TABLE mutes (
    muter_id    TEXT NOT NULL,
    muted_id    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (muter_id, muted_id)
);
