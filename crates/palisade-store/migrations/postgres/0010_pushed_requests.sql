-- Pushed authorization requests (OAU-10, RFC 9126): validated parameters kept for one use,
-- under the digest of the random part of their request_uri.
CREATE TABLE oauth_pushed_requests (
    request_sha256  TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    params          TEXT NOT NULL,
    expires_at      BIGINT NOT NULL
);
