-- Who registered each client (OAU-9, AUD-1): only an administrator's clients may be granted
-- service scopes such as audit:write. Clients with a registration access token came through
-- dynamic registration. A resource server's client names the resource it serves: it may
-- introspect only tokens for that audience.
ALTER TABLE oauth_clients ADD COLUMN registered_by TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE oauth_clients ADD COLUMN resource TEXT;
UPDATE oauth_clients SET registered_by = 'registration' WHERE registration_token_sha256 IS NOT NULL;
