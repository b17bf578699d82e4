//! Authentication: bearer tokens for partners (SCIM) and admins (API), stored only as hashes.

pub mod cache;
pub mod csrf;
pub mod jwt;
pub mod keys;
pub mod oidc_client;
pub mod secrets;
pub mod tokens;
pub mod totp;
