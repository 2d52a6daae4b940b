-- The tamper-evident audit log (AUD-3, AUD-4): one row per Merkle leaf, in index order, and the
-- signed checkpoints published over it.
CREATE TABLE audit_leaves (
    idx         INTEGER PRIMARY KEY,
    leaf_hash   TEXT NOT NULL,
    entry       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE audit_checkpoints (
    size        INTEGER PRIMARY KEY,
    note        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
