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

-- Events recorded by tools that run beside the server (`palisade admin`): they cannot append
-- to the log the server writes, so they leave the finished entry and its searchable row here,
-- and the server's writer appends them — deleting each in the same transaction — within a
-- second, or at its next start.
CREATE TABLE audit_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entry       TEXT NOT NULL,
    row_json    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
