-- The inactivity policy is per partner (issue 21): each partner's guests are found by their
-- last activity within that partner.
CREATE INDEX guests_partner_state_seen ON guests (partner_id, state, last_seen_at);
