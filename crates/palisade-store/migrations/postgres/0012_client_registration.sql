-- Dynamic client registration (OAU-9, RFC 7591/7592): the digest of the registration access
-- token that lets a registered client read, update and delete its own registration.
ALTER TABLE oauth_clients ADD COLUMN registration_token_sha256 TEXT;
