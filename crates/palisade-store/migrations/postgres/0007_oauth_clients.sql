-- OAuth clients (OAU-4). `secret_sha256` is the hex SHA-256 of the client secret (NULL for
-- public clients); redirect URIs and grant types are JSON arrays, scopes space-separated.
CREATE TABLE oauth_clients (
    client_id       TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    auth_method     TEXT NOT NULL,
    secret_sha256   TEXT,
    redirect_uris   TEXT NOT NULL,
    grant_types     TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
