-- Stable list order (created_at, id) per partner, for index and cursor pagination.
CREATE INDEX scim_users_order ON scim_users(partner_id, created_at, id);
CREATE INDEX scim_groups_order ON scim_groups(partner_id, created_at, id);
CREATE INDEX group_members_partner ON group_members(partner_id, member_id);
