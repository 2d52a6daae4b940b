-- Refresh tokens (OAU-5): opaque, stored by digest, rotated on every use. All tokens of one
-- family share the grant they descend from; reuse of a rotated token revokes that grant.
CREATE TABLE oauth_refresh_tokens (
    token_sha256    TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    epoch           INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    rotated_at      INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens(grant_id);
