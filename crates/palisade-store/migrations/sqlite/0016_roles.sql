-- Roles (RES-2): every account has one; roles include the ones below them (platform_admin ⊇
-- tenant_admin ⊇ moderator ⊇ member). Read on every request, so a change applies at once.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
