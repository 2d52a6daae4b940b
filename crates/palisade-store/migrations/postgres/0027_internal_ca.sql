-- The internal CA (TLS-5): one root per database, its key sealed under the sealing key, so that
-- every node signs with the same authority.
CREATE TABLE ca_authority (
    trust_domain  TEXT PRIMARY KEY,
    certificate   TEXT NOT NULL,
    sealed_key    TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
-- One-time join tokens, stored as digests; a token is spent by the request that marks it used.
CREATE TABLE ca_join_tokens (
    digest      TEXT PRIMARY KEY,
    spiffe_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
-- Every SVID signed, for `palisade ca list` and for the audit trail's references.
CREATE TABLE ca_svids (
    serial      TEXT PRIMARY KEY,
    spiffe_id   TEXT NOT NULL,
    via         TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    issued_at   BIGINT NOT NULL
);
CREATE INDEX ca_svids_by_id ON ca_svids(spiffe_id, not_after);
