//! Integration tests: the real application over HTTP on a random port, on SQLite and (when
//! GUESTBRIDGE_TEST_POSTGRES_URL is set) PostgreSQL.

mod cli;
mod discovery;
mod health;
mod helpers;
mod tenancy;
mod users_crud;
mod users_errors;
mod users_filter;
mod users_patch;
