//! Reading what the store keeps as text back into our types, with one error for a row that
//! no longer parses: such a row is corruption, not bad input.

use serde_json::{Map, Value};

use super::ServiceError;
use crate::domain::lifecycle::GuestState;
use crate::store::guests::GuestRow;

/// The lifecycle state a guest row records.
pub(crate) fn guest_state(g: &GuestRow) -> Result<GuestState, ServiceError> {
    g.state
        .parse()
        .map_err(|e: crate::domain::lifecycle::UnknownState| ServiceError::Corrupt(e.to_string()))
}

/// A stored SCIM document (`what` and `id` name it in the error).
pub(crate) fn document(
    text: &str,
    what: &str,
    id: &str,
) -> Result<Map<String, Value>, ServiceError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ServiceError::Corrupt(format!(
            "{what} {id} has an unreadable document"
        ))),
    }
}
