//! SCIM 2.0 (RFC 7643 schemas and resources, RFC 7644 protocol) under `/scim/v2`.

pub mod bulk_api;
mod bulk_order;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod groups_api;
pub mod http;
pub mod list_params;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod routes;
pub mod schema;
pub mod search_api;
mod text;
pub mod users_api;

use actix_web::web;

pub use routes::{normalize_path, scope};

/// Register every SCIM route under the scope this is mounted on.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(discovery::configure)
        .configure(users_api::configure)
        .configure(groups_api::configure)
        .configure(bulk_api::configure)
        .configure(search_api::configure);
}
