-- The audit log across nodes (AUD-3, SCL-1): its head — how many entries it holds and the fencing
-- token of the sequencer allowed to extend it. Every batch is committed with a compare-and-swap
-- on this row, so no index is reused and the tree never forks, whichever node sequences.
CREATE TABLE audit_head (
    id      BIGINT PRIMARY KEY,
    size    BIGINT NOT NULL,
    token   BIGINT NOT NULL
);
INSERT INTO audit_head (id, size, token) SELECT 1, COUNT(*), 0 FROM audit_leaves;

-- What tools left in the outbox becomes append jobs, which the sequencer integrates.
INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, created_at)
SELECT 'outbox-' || id, 'audit.append', json_build_object('entries', json_build_array(json_build_object('entry', entry, 'row', row_json::json)))::text, 'queued', 0, 1000, created_at, created_at
FROM audit_outbox;
DROP TABLE audit_outbox;
