-- Replaced authorization policies (RES-5, SCL-1): stored, so that a replacement made on one node
-- reaches every node (announced on the bus, read from here) and survives restarts. The latest
-- version is in force; the file or the built-in policies apply until the first replacement.
CREATE TABLE authz_policies (
    version     BIGINT PRIMARY KEY,
    text        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    via         TEXT NOT NULL,
    replaced_at BIGINT NOT NULL
);
