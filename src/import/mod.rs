//! CSV roster decoding for imports: bytes in, typed rows or per-row errors out, with no
//! database or HTTP. A roster is UTF-8 (with or without BOM) CSV with a header row; the
//! delimiter (comma, semicolon or tab) is detected or given; headers name the standard
//! columns or are renamed by the partner's column map (`mappings/columns-<partner>.toml`).
//! [`RosterReader`] streams: memory is bounded by one record plus, per userName seen, a
//! 16-byte fingerprint and its line (for duplicate detection). Each valid row becomes,
//! through [`RosterRow::to_scim`], the same SCIM User document a partner's SCIM client would
//! send, so imports share the SCIM write path.

mod columns;
mod dates;
mod dialect;
mod header;
mod reader;
mod records;
mod rows;

pub use columns::{
    is_column_map_file, load_column_maps, parse_column_maps, Column, ColumnMap, HeaderRole,
};
pub use dialect::{detect_dialect, Dialect};
pub use header::{DuplicateColumn, HeaderError};
pub use reader::RosterReader;
pub use rows::{
    is_valid_email, parse_active, RosterRow, RowError, RowErrorKind, RowResult,
    ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA, MAX_FIELD_CHARS, USER_SCHEMA,
};
