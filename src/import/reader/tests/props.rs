//! Properties of the reader over generated rosters.

use super::*;
use proptest::prelude::*;

fn lines_of(results: &[RowResult]) -> Vec<u64> {
    results
        .iter()
        .map(|r| match r {
            Ok(row) => row.line,
            Err(e) => e.line,
        })
        .collect()
}

/// Input built from the pieces that matter to a CSV parser.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"=\"".to_vec()),
        Just(b"userName".to_vec()),
        Just(b"email".to_vec()),
        Just(b"active".to_vec()),
        Just(b"accessEndDate".to_vec()),
        Just(b"a@b.co".to_vec()),
        Just(b"2025-12-31".to_vec()),
        Just(b"ann".to_vec()),
        Just(b"ANN".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xFF".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(b" ".to_vec()),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

fn check_never_panics(data: &[u8]) {
    let total_lines = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
    for delimiter in [None, Some(b';')] {
        if let Ok(r) = RosterReader::new(data, &ColumnMap::default(), delimiter) {
            let results: Vec<RowResult> = r.collect();
            let lines = lines_of(&results);
            assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
            assert!(lines.iter().all(|&l| l >= 2 && l <= total_lines));
            for row in results.iter().flatten() {
                let doc = row.to_scim();
                assert_eq!(doc["userName"], row.user_name.as_str());
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_never_panics(&data);
    }

    #[test]
    fn csv_like_bytes_never_panic_and_lines_increase(data in csvish()) {
        check_never_panics(&data);
        let mut with_header = b"userName,email;active\n".to_vec();
        with_header.extend_from_slice(&data);
        check_never_panics(&with_header);
    }

    /// Rows written by a CSV writer (any delimiter, line ending, BOM) read back as
    /// written, on the lines they were written to.
    #[test]
    fn written_rows_read_back(
        people in proptest::collection::vec(
            ("[a-z][a-z0-9.]{0,12}", "[^\\p{Cc}=]{0,20}", "[^\\p{Cc}=]{0,5}(\n[^\\p{Cc}=]{0,5})?", any::<bool>()),
            0..20,
        ),
        delimiter in prop_oneof![Just(b','), Just(b';'), Just(b'\t')],
        crlf in any::<bool>(),
        bom in any::<bool>(),
    ) {
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice(dialect::UTF8_BOM);
        }
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .from_writer(out);
        w.write_record(["userName", "displayName", "title", "active"]).unwrap();
        let mut expected = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut line = 2u64;
        for (i, (name, display, title, active)) in people.iter().enumerate() {
            let user = format!("{name}{i}");
            seen.insert(user.to_lowercase());
            w.write_record([user.as_str(), display, title, if *active { "yes" } else { "0" }]).unwrap();
            let lines_spanned = 1 + title.matches('\n').count() as u64;
            let display = display.trim();
            let title = title.trim();
            expected.push((line, user, (!display.is_empty()).then(|| display.to_string()), (!title.is_empty()).then(|| title.to_string()), *active));
            line += lines_spanned;
        }
        let bytes = w.into_inner().unwrap();
        let rows: Vec<RosterRow> = RosterReader::new(&bytes[..], &ColumnMap::default(), None)
            .unwrap()
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let got: Vec<_> = rows
            .into_iter()
            .map(|r| (r.line, r.user_name, r.display_name, r.title, r.active))
            .collect();
        // Values that clean to Excel text cells would legitimately differ; none are
        // generated here (no leading '=').
        prop_assert_eq!(got, expected);
    }
}
