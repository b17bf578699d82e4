//! The low-level record reader: splits a byte stream into CSV records with `csv-core` while
//! keeping only a fixed buffer, and reports the physical line each record starts on.
//!
//! We drive `csv-core` ourselves instead of using the `csv` crate's reader because the latter
//! reports, as a record's position, where the *previous* record ended: after CRLF line ends
//! or blank lines that is an earlier line than the one the record is on. Here every consumed
//! byte is seen, so a record's line is the line of its first byte. `\n`, `\r\n` and a lone
//! `\r` each end a line, as they end a record for `csv-core`.

use std::io::{self, Read};

/// Size of the input buffer; also the most that is read ahead to detect the dialect.
pub(crate) const BUFFER_BYTES: usize = 64 * 1024;

/// The largest record accepted, in input bytes. Real rows are a few hundred bytes; a record
/// this large is almost always an unclosed quote swallowing the rest of the file, and the cap
/// keeps memory bounded whatever the input.
pub(crate) const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Why reading stopped before the end of the input.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("could not read the file: {0}")]
    Io(#[from] io::Error),
    #[error(
        "the record starting here is larger than {} bytes, probably because of a quote that \
         is never closed; reading stopped",
        MAX_RECORD_BYTES
    )]
    TooLarge { line: u64 },
}

/// Splits a byte stream into records; the current record's fields are borrowed from it.
pub(crate) struct RecordReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    core: csv_core::Reader,
    fields: Vec<u8>,
    ends: Vec<usize>,
    field_count: usize,
    scanner: Scanner,
    /// The current record reached the end of the input inside a quoted field.
    unclosed_quote: bool,
    /// Bytes consumed from `inner` so far (including a BOM skipped by the caller).
    consumed: u64,
}

impl<R: Read> RecordReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            core: csv_core::Reader::new(),
            fields: vec![0; 1024],
            ends: vec![0; 32],
            field_count: 0,
            scanner: Scanner {
                line: 1,
                prev_cr: false,
                delimiter: b',',
                quote: QuoteState::FieldStart,
            },
            unclosed_quote: false,
            consumed: 0,
        }
    }

    /// Reads until the buffer holds a line break, is full, or the input ends; returns the
    /// unconsumed bytes for the caller to inspect (BOM, dialect).
    pub(crate) fn peek_first_line(&mut self) -> io::Result<&[u8]> {
        while !self.eof && self.end < self.buf.len() {
            if self.buf[self.start..self.end]
                .iter()
                .any(|&b| b == b'\n' || b == b'\r')
            {
                break;
            }
            let n = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Drops `n` peeked bytes (a byte-order mark) without parsing them.
    pub(crate) fn skip(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.consumed += n as u64;
    }

    /// Sets the field delimiter; call before the first record.
    pub(crate) fn set_delimiter(&mut self, delimiter: u8) {
        self.scanner.delimiter = delimiter;
        self.core = csv_core::ReaderBuilder::new()
            .delimiter(delimiter)
            .quote(b'"')
            .double_quote(true)
            .escape(None)
            .comment(None)
            .build();
    }

    /// Line of the next unread byte (1-based).
    pub(crate) fn line(&self) -> u64 {
        self.scanner.line
    }

    /// Bytes consumed from the input so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Reads the next record; returns the line it starts on, or `None` at the end.
    pub(crate) fn read_record(&mut self) -> Result<Option<u64>, RecordError> {
        use csv_core::ReadRecordResult as R;
        let (mut outlen, mut endlen) = (0usize, 0usize);
        let mut start_line: Option<u64> = None;
        let mut record_bytes = 0usize;
        self.field_count = 0;
        self.unclosed_quote = false;
        loop {
            if self.start == self.end && !self.eof {
                self.start = 0;
                self.end = read_retrying(&mut self.inner, &mut self.buf)?;
                if self.end == 0 {
                    self.eof = true;
                }
            }
            let input = &self.buf[self.start..self.end];
            let (res, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.fields[outlen..], &mut self.ends[endlen..]);
            let taken = &input[..nin];
            if start_line.is_none() {
                // csv-core skips blank lines before a record; the record starts at the first
                // byte that is not a line break.
                if let Some(i) = taken.iter().position(|&b| b != b'\n' && b != b'\r') {
                    self.scanner.scan(&taken[..i]);
                    start_line = Some(self.scanner.line);
                    self.scanner.scan(&taken[i..]);
                    record_bytes += nin - i;
                } else {
                    self.scanner.scan(taken);
                }
            } else {
                self.scanner.scan(taken);
                record_bytes += nin;
            }
            self.start += nin;
            self.consumed += nin as u64;
            outlen += nout;
            endlen += nend;
            if record_bytes > MAX_RECORD_BYTES {
                return Err(RecordError::TooLarge {
                    line: start_line.unwrap_or(self.scanner.line),
                });
            }
            match res {
                R::InputEmpty => {}
                R::OutputFull => {
                    let len = self.fields.len() * 2;
                    self.fields.resize(len, 0);
                }
                R::OutputEndsFull => {
                    let len = self.ends.len() * 2;
                    self.ends.resize(len, 0);
                }
                R::Record => {
                    self.field_count = endlen;
                    self.unclosed_quote = self.scanner.quote == QuoteState::Quoted;
                    self.scanner.quote = QuoteState::FieldStart;
                    return Ok(Some(start_line.unwrap_or(self.scanner.line)));
                }
                R::End => return Ok(None),
            }
        }
    }

    /// Whether the current record ran to the end of the input inside a quoted field: a
    /// quote was never closed, and the rest of the file became part of this record.
    pub(crate) fn unclosed_quote(&self) -> bool {
        self.unclosed_quote
    }

    /// Number of fields in the current record.
    pub(crate) fn len(&self) -> usize {
        self.field_count
    }

    /// Field `i` of the current record, as raw bytes.
    pub(crate) fn field(&self, i: usize) -> &[u8] {
        if i >= self.field_count {
            return &[];
        }
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.fields[from..self.ends[i]]
    }
}

/// Follows the consumed bytes: line count and quoting state.
struct Scanner {
    /// Line of the next unread byte (1-based).
    line: u64,
    /// The last byte consumed was `\r`, so a following `\n` ends no further line.
    prev_cr: bool,
    delimiter: u8,
    quote: QuoteState,
}

impl Scanner {
    /// Advances the line count and the quoting state over consumed bytes. `\n`, `\r\n` and
    /// a lone `\r` each end one line. The quoting state mirrors csv-core's (a quote opens a
    /// quoted field only at the start of a field; `""` inside one is a literal quote) so that
    /// a quote left open at the end of the input can be reported.
    fn scan(&mut self, bytes: &[u8]) {
        let (mut line, mut prev_cr, mut quote) = (self.line, self.prev_cr, self.quote);
        let delimiter = self.delimiter;
        for &b in bytes {
            match b {
                b'\n' => {
                    if !prev_cr {
                        line += 1;
                    }
                    prev_cr = false;
                }
                b'\r' => {
                    line += 1;
                    prev_cr = true;
                }
                _ => prev_cr = false,
            }
            quote = match (quote, b) {
                (QuoteState::Quoted, b'"') => QuoteState::MaybeClosed,
                (QuoteState::Quoted, _) => QuoteState::Quoted,
                (QuoteState::FieldStart, b'"') | (QuoteState::MaybeClosed, b'"') => {
                    QuoteState::Quoted
                }
                (_, b'\n' | b'\r') => QuoteState::FieldStart,
                (_, d) if d == delimiter => QuoteState::FieldStart,
                _ => QuoteState::Unquoted,
            };
        }
        self.line = line;
        self.prev_cr = prev_cr;
        self.quote = quote;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: it closes the field unless another quote follows.
    MaybeClosed,
}

fn read_retrying<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record as (line, fields).
    fn records(data: &[u8]) -> Vec<(u64, Vec<String>)> {
        let mut r = RecordReader::new(data);
        r.set_delimiter(b',');
        let mut out = Vec::new();
        while let Some(line) = r.read_record().unwrap() {
            let fields = (0..r.len())
                .map(|i| String::from_utf8_lossy(r.field(i)).into_owned())
                .collect();
            out.push((line, fields));
        }
        out
    }

    #[test]
    fn lines_are_where_records_start_for_every_line_ending() {
        for (data, lines) in [
            (&b"h\na\nb\n"[..], vec![1, 2, 3]),
            (b"h\r\na\r\nb\r\n", vec![1, 2, 3]),
            (b"h\ra\rb", vec![1, 2, 3]),
            (b"h\n\n\na\n\nb", vec![1, 4, 6]),
            (b"h\r\n\r\n\"x\r\ny\"\r\nz", vec![1, 3, 5]),
            (b"\n\nh\n", vec![3]),
        ] {
            let got: Vec<u64> = records(data).into_iter().map(|(l, _)| l).collect();
            assert_eq!(got, lines, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn quoted_fields_keep_newlines_and_doubled_quotes() {
        let got = records(b"a,b\n\"x\ny\",\"say \"\"hi\"\"\"\nlast,1\n");
        assert_eq!(got[1], (2, vec!["x\ny".into(), "say \"hi\"".into()]));
        assert_eq!(got[2], (4, vec!["last".into(), "1".into()]));
    }

    #[test]
    fn small_reads_and_long_records_work() {
        // A reader that hands out one byte at a time exercises every buffer boundary.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let long = "y".repeat(5000);
        let data = format!("h\r\n\"{long}\",{}\r\nz\r\n", ",".repeat(100));
        let mut r = RecordReader::new(OneByte(data.as_bytes()));
        r.set_delimiter(b',');
        assert_eq!(r.read_record().unwrap(), Some(1));
        assert_eq!(r.read_record().unwrap(), Some(2));
        assert_eq!(r.len(), 102);
        assert_eq!(r.field(0), long.as_bytes());
        assert_eq!(r.read_record().unwrap(), Some(3));
        assert_eq!(r.field(0), b"z");
        assert_eq!(r.read_record().unwrap(), None);
        assert_eq!(r.consumed(), data.len() as u64);
    }

    #[test]
    fn an_unclosed_quote_stops_at_the_record_cap() {
        let mut data = b"h\n\"open\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        let mut r = RecordReader::new(&data[..]);
        r.set_delimiter(b',');
        assert_eq!(r.read_record().unwrap(), Some(1));
        assert!(matches!(
            r.read_record(),
            Err(RecordError::TooLarge { line: 2 })
        ));
    }

    #[test]
    fn an_unclosed_quote_at_the_end_is_flagged() {
        for (data, unclosed) in [
            (&b"h\n\"open\nx,y\n"[..], true),
            (b"h\n\"open", true),
            (b"h\nok,\"q\"\"\"\n", false),
            (b"h\nok,\"q\"\"\"", false),
            (b"h\nlit\"eral,x\n", false),
            (b"h\n\"closed\"tail,\"\"\n", false),
        ] {
            let mut r = RecordReader::new(data);
            r.set_delimiter(b',');
            assert_eq!(r.read_record().unwrap(), Some(1));
            assert!(!r.unclosed_quote());
            assert_eq!(r.read_record().unwrap(), Some(2));
            assert_eq!(
                r.unclosed_quote(),
                unclosed,
                "{:?}",
                String::from_utf8_lossy(data)
            );
            assert_eq!(r.read_record().unwrap(), None);
        }
    }

    #[test]
    fn peek_reads_up_to_the_first_line_break() {
        let data = b"a;b;c\r\n1;2;3\r\n";
        let mut r = RecordReader::new(&data[..]);
        let peeked = r.peek_first_line().unwrap().to_vec();
        assert!(peeked.starts_with(b"a;b;c\r"));
        r.set_delimiter(b';');
        assert_eq!(r.read_record().unwrap(), Some(1));
        assert_eq!(r.field(2), b"c");
    }
}
