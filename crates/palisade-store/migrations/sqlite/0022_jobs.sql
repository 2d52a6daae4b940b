-- Durable background jobs (palisade-jobs): enqueued in the transaction of the change that needs
-- them, claimed by one worker at a time under a lease (`lease`, until `leased_until`), retried
-- with back-off, and left `dead` with their last error after their last attempt. A kind's
-- idempotency key makes a second enqueue of the same work a no-op.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    idempotency_key TEXT,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    run_at          INTEGER NOT NULL,
    lease           TEXT,
    leased_until    INTEGER,
    last_error      TEXT,
    result          TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs(kind, idempotency_key);
CREATE INDEX jobs_due ON jobs(state, run_at);

-- The notes of ended sessions become jobs; deliveries not made yet are dropped (their logout
-- tokens lived two minutes).
INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, created_at)
SELECT 'migrated-' || session_id, 'identity.session_ended', json_object('session_id', session_id, 'user_id', user_id), 'queued', 0, 12,
       ended_at, ended_at
FROM session_endings;
DROP TABLE oauth_logout_deliveries;
DROP TABLE session_endings;
