-- ACME (TLS-3). The account at each directory: its credentials (with the account key), sealed.
CREATE TABLE acme_accounts (
    directory    TEXT PRIMARY KEY,
    sealed       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
-- http-01 answers, in shared storage so that whichever node the CA reaches answers.
CREATE TABLE acme_challenges (
    token              TEXT PRIMARY KEY,
    key_authorization  TEXT NOT NULL,
    expires_at         BIGINT NOT NULL
);
-- Certificates obtained, by their names: the chain, its key (sealed), and the fencing token of
-- the lease under which it was stored (a node that lost the lease cannot overwrite it).
CREATE TABLE tls_certificates (
    name        TEXT PRIMARY KEY,
    chain       TEXT NOT NULL,
    sealed_key  TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    fencing     BIGINT NOT NULL,
    stored_at   BIGINT NOT NULL
);
-- Where each certificate's renewal stands, shared by the nodes: failures in a row and when the
-- next attempt may be made (the back-off survives restarts), and an operator's request to renew
-- now (`palisade certs renew`).
CREATE TABLE acme_state (
    name               TEXT PRIMARY KEY,
    failures           BIGINT NOT NULL,
    next_attempt_at    BIGINT NOT NULL,
    last_error         TEXT,
    renew_requested    BIGINT NOT NULL
);
