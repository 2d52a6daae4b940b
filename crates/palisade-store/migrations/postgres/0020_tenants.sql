-- Tenants (IDN-8): organisations that own accounts, OAuth clients and content, isolated from
-- one another. Accounts already name theirs; clients now do too. `default` is the tenant of
-- open sign-up and of everything made before tenants could be created.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);
ALTER TABLE oauth_clients ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
