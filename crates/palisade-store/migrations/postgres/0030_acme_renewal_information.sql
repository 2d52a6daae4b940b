-- ACME Renewal Information (RFC 9773) and issuer fallback. The directory of the CA that issued
-- each certificate (ARI is asked there, and only there may a renewal name it in `replaces`).
ALTER TABLE tls_certificates ADD COLUMN directory TEXT;
-- The window the CA suggested for the certificate named by `ari_certificate` (its ARI
-- identifier), the time chosen at random inside it (shared by the nodes, so they agree), when
-- to ask again, and the CA's explanation, if it gave one.
ALTER TABLE acme_state ADD COLUMN ari_certificate TEXT;
ALTER TABLE acme_state ADD COLUMN ari_window_start BIGINT;
ALTER TABLE acme_state ADD COLUMN ari_window_end BIGINT;
ALTER TABLE acme_state ADD COLUMN ari_selected_at BIGINT;
ALTER TABLE acme_state ADD COLUMN ari_next_check BIGINT NOT NULL DEFAULT 0;
ALTER TABLE acme_state ADD COLUMN ari_explanation TEXT;
