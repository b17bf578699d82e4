//! Parse errors: a byte position and a message, mapped to `invalidFilter` / `invalidPath`.

use std::fmt;

use crate::scim_core::error::ScimError;

/// Where and what went wrong: byte offset in the input and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl FilterError {
    pub fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }

    /// The error as a SCIM `invalidPath` error, for PATCH paths
    /// ([`parse_patch_path`](super::parse_patch_path)); `From<FilterError> for ScimError` gives
    /// `invalidFilter`.
    pub fn into_path_error(self) -> ScimError {
        ScimError::invalid_path(format!("invalid path {self}"))
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

impl From<FilterError> for ScimError {
    fn from(e: FilterError) -> Self {
        ScimError::invalid_filter(format!("invalid filter {e}"))
    }
}
