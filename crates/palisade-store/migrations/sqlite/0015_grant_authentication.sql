-- How the user authenticated for a grant, so that ID tokens issued on refresh (OpenID Connect
-- §12.2) carry the original auth_time, amr and acr.
ALTER TABLE oauth_grants ADD COLUMN auth_time INTEGER;
ALTER TABLE oauth_grants ADD COLUMN amr TEXT;
