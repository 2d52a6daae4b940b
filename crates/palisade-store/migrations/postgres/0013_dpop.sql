-- DPoP (OAU-10, RFC 9449): the key thumbprint a code must be exchanged with (`dpop_jkt` of the
-- authorization request), and the key a public client's refresh tokens are bound to. Proof ids
-- (`jti`) are kept single-use in oauth_assertion_ids beside client assertion ids.
ALTER TABLE oauth_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE oauth_refresh_tokens ADD COLUMN dpop_jkt TEXT;
