-- Authorization codes (OAU-3, OAU-7): stored by digest, single use, bound to the client, the
-- redirect URI, the PKCE challenge and the browser session that approved them.
CREATE TABLE oauth_codes (
    code_sha256     TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    resource        TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT NOT NULL,
    auth_time       INTEGER NOT NULL,
    amr             TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    created_at      INTEGER NOT NULL
);

-- What an exchanged code became: tokens carry the grant id, and revoking the grant (a replayed
-- code, a withdrawn consent) makes every token of it inactive at once.
CREATE TABLE oauth_grants (
    grant_id    TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX oauth_grants_user ON oauth_grants(user_id, client_id);

-- Remembered consent (OAU-6): the scopes a user granted a client.
CREATE TABLE oauth_consents (
    user_id     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
