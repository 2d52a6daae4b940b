-- private_key_jwt clients (OAU-4): their public keys (a JSON array of JWKs), and the ids of the
-- client assertions already used, kept until the assertion expires so that none is replayed.
ALTER TABLE oauth_clients ADD COLUMN jwks TEXT;
CREATE TABLE oauth_assertion_ids (
    jti_sha256  TEXT PRIMARY KEY,
    expires_at  INTEGER NOT NULL
);
