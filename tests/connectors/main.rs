//! Connector tests against local HTTP servers started in the test (port 0 on 127.0.0.1):
//! a Microsoft Graph stand-in, webhook receivers and a small SCIM stand-in that only
//! exercises the SCIM connector's HTTP flow (the SCIM connector's real test is against a
//! second Guestbridge instance, in the main project).

mod graph;
mod graph_stand_in;
mod reply_size;
mod scim;
mod support;
mod webhook;
