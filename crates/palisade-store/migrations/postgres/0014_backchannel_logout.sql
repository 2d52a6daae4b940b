-- OpenID Connect back-channel logout (OAU-8). Every ended browser session is noted in the same
-- transaction that deletes it; the provider turns each note into logout tokens for the clients
-- that were issued tokens in that session, and delivers them with retries until answered.
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT;
CREATE TABLE session_endings (
    session_id  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    ended_at    BIGINT NOT NULL
);
CREATE TABLE oauth_logout_deliveries (
    id               TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL,
    uri              TEXT NOT NULL,
    logout_token     TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX oauth_logout_deliveries_due ON oauth_logout_deliveries(next_attempt_at);
CREATE INDEX oauth_codes_session ON oauth_codes(session_id);
