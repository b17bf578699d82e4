//! Domain types: no HTTP, no SQL. Values are parsed once at the edge and trusted inside.

pub mod partner;

pub use partner::{Partner, PartnerSlug};
