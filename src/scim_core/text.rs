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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_ci_prefers_the_exact_name_then_any_case() {
        let v = json!({"userName": "exact", "USERNAME": "upper", "Emails": []});
        let m = v.as_object().unwrap();
        assert_eq!(get_ci(m, "USERNAME"), Some(&json!("upper")));
        assert_eq!(get_ci(m, "userName"), Some(&json!("exact")));
        assert_eq!(get_ci(m, "emails"), Some(&json!([])));
        assert_eq!(get_ci(m, "name"), None);
        assert_eq!(member_ci(&v, "EMAILS"), Some(&json!([])));
        assert_eq!(member_ci(&json!("userName"), "userName"), None);
    }

    #[test]
    fn shorten_cuts_on_a_character_boundary_and_only_when_longer() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc…");
        assert_eq!(shorten("ééé€", 2), "éé…");
        assert_eq!(shorten("", 0), "");
    }
}
