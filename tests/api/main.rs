//! Integration tests: the real application over HTTP on a random port, on SQLite and (when
//! GUESTBRIDGE_TEST_POSTGRES_URL is set) PostgreSQL.

mod admin_tokens;
mod backup_restore;
mod bad_input;
mod bounds_bulk;
mod bounds_groups;
mod bounds_import;
mod bounds_metrics;
mod browser;
mod cli;
mod conformance;
mod edge;
mod erasure;
mod filter_differential;
#[path = "../connectors/graph_stand_in.rs"]
mod graph_stand_in;
mod health;
mod helpers;
mod import;
mod import_staging;
mod isolation_attacks;
mod jobs;
mod lifecycle;
mod log_scan;
mod mail;
mod portal;
mod portal_auth;
mod queue_claims;
mod read_path;
mod revocation;
mod revocation_races;
mod rules_shared;
mod scenario_entra;
mod scenario_okta;
mod scim_schema_check;
mod smtp;
mod strict_clients;
mod sync;
mod sync_ownership;
mod tenancy;
mod users_crud;
mod users_errors;
mod users_filter;
mod users_patch;
mod write_path;
