//! Authentication: bearer tokens for partners (SCIM) and admins (API), stored only as hashes.

pub mod tokens;
