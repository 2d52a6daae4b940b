-- What nodes share (SCL-1). Leases: one holder at a time, with a fencing token that grows with
-- every change of holder.
CREATE TABLE cluster_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    token       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- Single-use ids (client assertions, DPoP proofs) now belong to the cluster's replay store,
-- which keeps them here when Redis is not configured or not reachable.
ALTER TABLE oauth_assertion_ids RENAME TO replay_ids;
ALTER TABLE replay_ids RENAME COLUMN jti_sha256 TO id_sha256;
