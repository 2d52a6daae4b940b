-- WebAuthn passkeys and the one-time challenges of their ceremonies (IDN-6).
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    algorithm     INTEGER NOT NULL,
    public_key    TEXT NOT NULL,
    sign_count    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER
);
CREATE INDEX passkeys_user ON passkeys(user_id);

CREATE TABLE webauthn_challenges (
    challenge_hash  TEXT PRIMARY KEY,
    purpose         TEXT NOT NULL,
    user_id         TEXT REFERENCES users(id) ON DELETE CASCADE,
    expires_at      INTEGER NOT NULL
);
