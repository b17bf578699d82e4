-- The deprovision job looks for deactivated people; keep that lookup off the full table.
CREATE INDEX scim_users_inactive ON scim_users(active) WHERE active = 0;
