//! The streaming roster reader: reads the BOM and header of a CSV roster, resolves each
//! header through the partner's column map, then yields one [`RowResult`] per non-blank
//! record. Memory stays bounded by the input buffer (64 KiB), the largest record (1 MiB at
//! most) and a fingerprint of each userName seen (needed to report duplicates), whatever the
//! file size: 1,000,000 rows peak at about 80 MB.

use std::io::Read;
use std::iter::FusedIterator;

use super::columns::ColumnMap;
use super::dialect::{self, Dialect};
use super::header::{self, HeaderError};
use super::records::{RecordError, RecordReader};
use super::rows::{RowDecoder, RowError, RowErrorKind, RowResult};

/// Reads a CSV roster row by row. Created with [`RosterReader::new`], which reads the header;
/// then iterate for one result per non-blank record. After an unreadable stretch (an I/O
/// error or an oversized record) it yields one fatal [`RowError`] and stops.
pub struct RosterReader<R: Read> {
    records: RecordReader<R>,
    decoder: RowDecoder,
    columns: Vec<String>,
    headers: Vec<String>,
    dialect: Dialect,
    had_bom: bool,
    header_line: u64,
    done: bool,
}

impl<R: Read> RosterReader<R> {
    /// Reads the byte-order mark and the header row. The delimiter is `delimiter` if given,
    /// else the column map's, else detected from the header line.
    pub fn new(reader: R, map: &ColumnMap, delimiter: Option<u8>) -> Result<Self, HeaderError> {
        let mut records = RecordReader::new(reader);
        let peeked = records.peek_first_line()?;
        if dialect::is_utf16(peeked) {
            return Err(HeaderError::Utf16);
        }
        let (rest, had_bom) = dialect::strip_bom(peeked);
        let detected = dialect::detect_dialect(rest);
        if had_bom {
            records.skip(dialect::UTF8_BOM.len());
        }
        let dialect = match delimiter.or(map.delimiter()) {
            Some(d) if matches!(d, b',' | b';' | b'\t' | b'|') => Dialect { delimiter: d },
            Some(d) => return Err(HeaderError::Delimiter(d as char)),
            None => detected,
        };
        records.set_delimiter(dialect.delimiter);

        let header_line = match records.read_record() {
            Ok(Some(line)) => line,
            Ok(None) => return Err(HeaderError::Empty),
            Err(RecordError::Io(e)) => return Err(HeaderError::Io(e)),
            Err(e @ RecordError::TooLarge { .. }) => {
                return Err(HeaderError::TooLarge(e.to_string()))
            }
        };
        if records.unclosed_quote() {
            return Err(HeaderError::UnclosedQuote);
        }
        let header = header::resolve(&records, map)?;
        let columns = header.columns();
        let header::Header { headers, roles } = header;
        let decoder = RowDecoder::new(roles, headers.clone(), map.date_formats().to_vec());
        Ok(Self {
            records,
            decoder,
            columns,
            headers,
            dialect,
            had_bom,
            header_line,
            done: false,
        })
    }

    /// The standard column each input column stands for, or `""` if it is ignored or has no
    /// header.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The input headers as written (trimmed).
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the file started with a UTF-8 byte-order mark.
    pub fn had_bom(&self) -> bool {
        self.had_bom
    }

    /// The line the header row is on (1 unless blank lines precede it).
    pub fn header_line(&self) -> u64 {
        self.header_line
    }

    /// Whether a row read so far carries this userName (case-insensitively), valid or not:
    /// a full import deactivates only people no row names.
    pub fn saw(&self, user_name: &str) -> bool {
        self.decoder.saw(user_name)
    }

    /// Bytes read from the input so far, for progress against the file size.
    pub fn bytes_read(&self) -> u64 {
        self.records.consumed()
    }
}

impl<R: Read> Iterator for RosterReader<R> {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        while !self.done {
            match self.records.read_record() {
                Ok(Some(line)) if self.records.unclosed_quote() => {
                    self.done = true;
                    return Some(Err(RowError {
                        line,
                        column: None,
                        reason: "a quote opened in this row is never closed, so everything from \
                                 here to the end of the file was read as one row; close the \
                                 quote and import again"
                            .into(),
                        kind: RowErrorKind::UnclosedQuote,
                        user_name: None,
                    }));
                }
                Ok(Some(line)) => {
                    let records = &self.records;
                    if let Some(result) = self
                        .decoder
                        .decode(line, records.len(), |i| records.field(i))
                    {
                        return Some(result);
                    }
                }
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    let line = match e {
                        RecordError::TooLarge { line } => line,
                        RecordError::Io(_) => self.records.line(),
                    };
                    return Some(Err(RowError {
                        line,
                        column: None,
                        reason: e.to_string(),
                        kind: RowErrorKind::Unreadable,
                        user_name: None,
                    }));
                }
            }
        }
        None
    }
}

impl<R: Read> FusedIterator for RosterReader<R> {}

#[cfg(test)]
mod tests;
