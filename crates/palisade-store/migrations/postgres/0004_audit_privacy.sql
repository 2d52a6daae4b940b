-- Per-subject keys for the encrypted part of audit entries (AUD-6). `subject` is the keyed
-- pseudonym of the account, never its id; `sealed_key` is the key sealed under the server's
-- sealing key and becomes NULL when the subject is erased (crypto-shredding): the entries stay
-- and every proof still verifies, but their payload can no longer be read.
CREATE TABLE audit_subject_keys (
    key_id      TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    sealed_key  TEXT,
    created_at  BIGINT NOT NULL,
    erased_at   BIGINT
);
CREATE UNIQUE INDEX audit_subject_keys_live ON audit_subject_keys(subject) WHERE sealed_key IS NOT NULL;

-- The searchable side of the log (AUD-7): which log entry an event row became.
ALTER TABLE security_events ADD COLUMN log_index BIGINT;
CREATE INDEX security_events_action ON security_events(action, at);
CREATE INDEX security_events_trace ON security_events(trace_id);
CREATE INDEX security_events_at ON security_events(at);
ALTER TABLE security_events ADD COLUMN client TEXT;
ALTER TABLE security_events ADD COLUMN device TEXT;
