-- Token signing keys and their lifecycle (TOK-2, TOK-3). `sealed_private` is the PKCS#8 key
-- sealed under the server's sealing key; `state` is next, active, retired or revoked, with at
-- most one next and one active key at a time.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    sealed_private  TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    activated_at    BIGINT,
    retired_at      BIGINT,
    revoked_at      BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_next_one_active ON signing_keys(state)
    WHERE state IN ('next', 'active');
