//! The SCIM 2.0 model (RFC 7643 schemas and resources, the RFC 7644 filter and PATCH
//! languages, projection and the error body), with no HTTP and no SQL: services, the store
//! and the mapping rules build on it; the SCIM HTTP handlers in `crate::scim` are one adapter
//! over the services, beside the admin API and the portal.

pub mod bulk_order;
pub mod error;
pub mod filter;
pub mod minimise;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;
pub(crate) mod text;
