-- One token bucket per partner for its SCIM request rate (scim_requests_per_second), shared
-- by every instance on PostgreSQL: each request refills and takes a token in one UPDATE.
CREATE TABLE scim_rate_buckets (
    partner_id TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_at BIGINT NOT NULL,
    admitted BIGINT NOT NULL
);
