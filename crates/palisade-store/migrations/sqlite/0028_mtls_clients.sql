-- Mutual-TLS client authentication (RFC 8705): the SPIFFE ID a `tls_client_auth` client's SVID
-- names, or the SHA-256 thumbprint of a `self_signed_tls_client_auth` client's certificate.
ALTER TABLE oauth_clients ADD COLUMN tls_client_certificate TEXT;
