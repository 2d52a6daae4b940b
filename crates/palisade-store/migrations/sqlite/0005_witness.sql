-- `palisade witness` (AUD-4): the latest checkpoint cosigned for each log, the state that lets
-- a witness refuse rollbacks and forks. Updated by compare-and-swap on `size`.
CREATE TABLE witness_checkpoints (
    origin      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    root        TEXT NOT NULL,
    note        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- On the log's side: how many witness cosignatures a stored checkpoint carries (its note then
-- holds them as extra signature lines).
ALTER TABLE audit_checkpoints ADD COLUMN cosignatures INTEGER NOT NULL DEFAULT 0;
