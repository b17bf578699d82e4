-- Foundation schema (SQLite). Timestamps are Unix epoch milliseconds; JSON documents are TEXT.
-- Flags are integers (0/1): the portable query layer (sqlx Any) decodes no SQLite BOOLEAN.

CREATE TABLE partners (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE partner_tokens (
    id            TEXT PRIMARY KEY,
    partner_id    TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX partner_tokens_partner ON partner_tokens(partner_id);

CREATE TABLE admin_tokens (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE TABLE scim_users (
    id                   TEXT PRIMARY KEY,
    partner_id           TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    user_name            TEXT NOT NULL,
    user_name_lower      TEXT NOT NULL,
    external_id          TEXT,
    active               INTEGER NOT NULL,
    display_name         TEXT,
    primary_email_lower  TEXT,
    doc                  TEXT NOT NULL,
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users(partner_id, user_name_lower);
CREATE INDEX scim_users_external_id ON scim_users(partner_id, external_id);
CREATE INDEX scim_users_email ON scim_users(partner_id, primary_email_lower);
CREATE INDEX scim_users_active ON scim_users(partner_id, active);
CREATE INDEX scim_users_updated ON scim_users(partner_id, updated_at);

CREATE TABLE scim_groups (
    id                   TEXT PRIMARY KEY,
    partner_id           TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    display_name         TEXT NOT NULL,
    display_name_lower   TEXT NOT NULL,
    external_id          TEXT,
    doc                  TEXT NOT NULL,
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX scim_groups_display_name ON scim_groups(partner_id, display_name_lower);
CREATE INDEX scim_groups_external_id ON scim_groups(partner_id, external_id);

CREATE TABLE group_members (
    group_id     TEXT NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
    member_id    TEXT NOT NULL,
    partner_id   TEXT NOT NULL,
    member_type  TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members(member_id);

-- One row per leaf value of a resource, so filters on any attribute compile to indexed SQL.
-- elem numbers the element of a multi-valued attribute (0 for single-valued) so that a value
-- path filter can correlate sub-attributes of the same element.
CREATE TABLE scim_values (
    resource_id  TEXT NOT NULL,
    partner_id   TEXT NOT NULL,
    path         TEXT NOT NULL,
    elem         INTEGER NOT NULL,
    value        TEXT,
    value_ci     TEXT,
    num          REAL
);
CREATE INDEX scim_values_lookup ON scim_values(partner_id, path, value_ci);
CREATE INDEX scim_values_exact ON scim_values(partner_id, path, value);
CREATE INDEX scim_values_resource ON scim_values(resource_id);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    partner_id   TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    request_id   TEXT,
    detail       TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log(target_type, target_id);
CREATE INDEX audit_log_partner ON audit_log(partner_id, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
