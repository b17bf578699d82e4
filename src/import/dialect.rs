//! The CSV dialect of a roster: a UTF-8 byte-order mark is skipped, and the delimiter
//! (comma, semicolon or tab) is detected from the header line when neither the caller nor the
//! partner's column map gives one. Quoting is always RFC 4180 style (`"`, doubled to escape).

/// UTF-8 byte-order mark, written by Excel's "CSV UTF-8" export.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Delimiters a roster may use, in the order ties are resolved.
pub const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// How the fields of a roster are separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
}

impl Default for Dialect {
    fn default() -> Self {
        Self { delimiter: b',' }
    }
}

/// The bytes after a UTF-8 byte-order mark, and whether there was one.
pub fn strip_bom(bytes: &[u8]) -> (&[u8], bool) {
    match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (rest, true),
        None => (bytes, false),
    }
}

/// Whether the bytes start with a UTF-16 byte-order mark (Excel's "Unicode text" export),
/// which we refuse with a clear message rather than decode as garbage.
pub fn is_utf16(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF")
}

/// Detects the delimiter from the start of a file: the candidate occurring most often outside
/// quotes on the header line (up to the first line break outside quotes). Ties, and a header
/// with a single column, resolve to comma, then semicolon, then tab.
pub fn detect_dialect(first_bytes: &[u8]) -> Dialect {
    let (bytes, _) = strip_bom(first_bytes);
    let mut counts = [0usize; DELIMITERS.len()];
    let mut in_quotes = false;
    for &b in bytes {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' | b'\r' if !in_quotes => break,
            _ if !in_quotes => {
                if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let mut best = 0;
    for i in 1..DELIMITERS.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    Dialect {
        delimiter: DELIMITERS[best],
    }
}

/// A readable name for a delimiter, for messages.
pub fn delimiter_name(delimiter: u8) -> String {
    match delimiter {
        b',' => "comma".into(),
        b';' => "semicolon".into(),
        b'\t' => "tab".into(),
        b'|' => "pipe".into(),
        other => format!("{:?}", other as char),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_delimiter() {
        assert_eq!(detect_dialect(b"userName,email,active\n").delimiter, b',');
        assert_eq!(detect_dialect(b"userName;email;active\r\n").delimiter, b';');
        assert_eq!(detect_dialect(b"userName\temail\tactive").delimiter, b'\t');
    }

    #[test]
    fn detection_skips_the_bom_and_ignores_quoted_and_later_text() {
        assert_eq!(
            detect_dialect(b"\xEF\xBB\xBFuserName;email\n").delimiter,
            b';'
        );
        // Commas inside quotes do not count; neither do those on the next lines.
        assert_eq!(
            detect_dialect(b"\"Name, full\";Login;Mail\na,b,c,d,e,f\n").delimiter,
            b';'
        );
        // A quoted header cell may span lines.
        assert_eq!(detect_dialect(b"\"a\nb\"\tc\td\n,,,,,,").delimiter, b'\t');
    }

    #[test]
    fn single_column_and_empty_input_default_to_comma() {
        assert_eq!(detect_dialect(b"userName\nann\n").delimiter, b',');
        assert_eq!(detect_dialect(b"").delimiter, b',');
        assert_eq!(detect_dialect(b"a;b,c\n").delimiter, b',');
    }

    #[test]
    fn bom_helpers() {
        assert_eq!(strip_bom(b"\xEF\xBB\xBFx"), (&b"x"[..], true));
        assert_eq!(strip_bom(b"x"), (&b"x"[..], false));
        assert!(is_utf16(b"\xFF\xFEu\0"));
        assert!(!is_utf16(b"userName"));
    }
}
