//! The SCIM 2.0 HTTP adapter under `/scim/v2` (RFC 7644 protocol): handlers that parse
//! requests, call the services and write SCIM responses. The model itself is `scim_core`.

pub mod bulk_api;
pub mod discovery;
pub mod groups_api;
pub mod http;
pub mod list_params;
pub mod routes;
pub mod search_api;
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
