//! Small helpers the filter parser and the PATCH engine share: attribute names are
//! case-insensitive (RFC 7643 §2.1), and error messages quote client input only in part.

use serde_json::{Map, Value};

/// Object member by name, exact match first, then ASCII case-insensitive.
pub(crate) fn get_ci<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// [`get_ci`] on any JSON value; values that are not objects have no members.
pub(crate) fn member_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    get_ci(value.as_object()?, key)
}

/// `s` cut after `max_chars` characters, with an ellipsis when cut, so a long token
/// cannot blow up an error message.
pub(crate) fn shorten(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}
