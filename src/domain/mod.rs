//! Domain types: no HTTP, no SQL. Values are parsed once at the edge and trusted inside.

pub mod job;
pub mod lifecycle;
pub mod partner;
pub mod sync_event;

pub use job::JobName;
pub use lifecycle::{Event, GuestState, SuspendReason};
pub use partner::{Partner, PartnerSlug};
pub mod admin_role;
pub mod group_roles;
pub use admin_role::{AdminPrincipal, AdminRole, AdminScope, PrincipalKind};
