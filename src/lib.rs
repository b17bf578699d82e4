//! Guestbridge: a SCIM 2.0 provisioning and sync bridge for business-to-business guest
//! access. Protocol adapters (`scim`, `cli`) translate; `services` decide; `store` holds
//! all SQL. See docs/architecture.md.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod app_state;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod console;
pub mod console_pages;
pub mod domain;
pub mod edge;
pub mod health;
pub mod import;
pub mod jobs;
pub mod mail;
pub mod mapping;
pub mod metrics;
pub mod portal;
pub mod portal_pages;
pub mod request_metrics;
pub mod scim;
pub mod scim_core;
pub mod services;
pub mod startup;
pub mod store;
pub mod telemetry;
