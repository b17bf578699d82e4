//! Structure-aware fuzzing of the parsers that take partner or operator input: SCIM filters,
//! PATCH paths and requests (parsed and applied), CSV rosters, rule files and Bulk requests
//! (parsed and scheduled). Inputs are
//! near-valid, generated from each grammar and then mutated. No input may panic or take over
//! a second. `GUESTBRIDGE_FUZZ_CASES` sets the cases per target (default 300); executions
//! are printed and written to target/tmp/fuzz.count; `GUESTBRIDGE_FUZZ_ONLY=<target>` runs
//! one target alone.

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

fn cases() -> u32 {
    std::env::var("GUESTBRIDGE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

/// Run `f` in a thread and fail if it panics or runs over a second.
fn within_a_second<F: FnOnce() + Send + 'static>(what: &str, f: F) -> Result<(), TestCaseError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        let _ = tx.send(ok);
    });
    match rx.recv_timeout(Duration::from_secs(1)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(TestCaseError::fail(format!("{what}: panicked"))),
        Err(_) => Err(TestCaseError::fail(format!("{what}: over 1 s"))),
    }
}

/// Pieces the grammars are built from, odd ones included.
fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("userName".to_string()),
        Just("emails".to_string()),
        Just("emails.value".to_string()),
        Just("name.familyName".to_string()),
        Just("meta.lastModified".to_string()),
        Just("groups.value".to_string()),
        Just("members".to_string()),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department".to_string()),
        Just("active".to_string()),
        "[a-zA-Z][a-zA-Z0-9.:_-]{0,12}",
    ]
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"x\"".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("42".to_string()),
        Just("-1.5e300".to_string()),
        Just("\"2026-12-02T22:01:34Z\"".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("\"\\ud800\"".to_string()),
        Just("\"' OR 1=1 --\"".to_string()),
        "\"[^\"\\\\]{0,10}\"",
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ]
}

fn op() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "EQ", "pr", "xx",
    ])
}

fn filter() -> impl Strategy<Value = String> {
    let leaf = (atom(), op(), literal()).prop_map(|(a, o, l)| {
        if o == "pr" {
            format!("{a} pr")
        } else {
            format!("{a} {o} {l}")
        }
    });
    leaf.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["and", "or", "AND", "andd"]),
                inner.clone()
            )
                .prop_map(|(a, j, b)| format!("{a} {j} {b}")),
            inner.clone().prop_map(|f| format!("not ({f})")),
            inner.clone().prop_map(|f| format!("({f})")),
            (atom(), inner.clone()).prop_map(|(a, f)| format!("{a}[{f}]")),
            inner.clone().prop_map(|f| format!("{f})")),
            inner.prop_map(|f| format!("({f}")),
        ]
    })
}

/// A near-valid input, then up to three byte-level mutations that keep it UTF-8.
fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (
        base,
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<char>()), 0..3),
    )
        .prop_map(|(s, muts)| {
            let mut chars: Vec<char> = s.chars().collect();
            for (at, kind, c) in muts {
                if chars.is_empty() {
                    chars.push(c);
                    continue;
                }
                let i = at.index(chars.len());
                match kind {
                    0 => chars[i] = c,
                    1 => chars.insert(i, c),
                    2 => {
                        chars.remove(i);
                    }
                    _ => {
                        let dup: Vec<char> = chars[i..].to_vec();
                        chars.extend(dup);
                    }
                }
            }
            chars.into_iter().collect()
        })
}

fn run<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> u64
where
    S::Value: std::fmt::Debug,
{
    // A long pass of one new target need not repeat the others.
    if std::env::var("GUESTBRIDGE_FUZZ_ONLY").is_ok_and(|only| only != name) {
        return 0;
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let count = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&strategy, |v| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        test(v)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    count.into_inner()
}

fn patch_body() -> impl Strategy<Value = String> {
    let op_name = prop::sample::select(vec!["add", "replace", "remove", "Add", "REPLACE", "move"]);
    let value = prop_oneof![
        Just(json!("x")),
        Just(json!(false)),
        Just(json!([{"value": "a@b.example", "type": "work"}])),
        Just(json!({"name": {"givenName": "Z"}, "active": true})),
        Just(json!(null)),
        Just(json!({"emails": [{"value": "x", "primary": true}, {"value": "y", "primary": true}]})),
    ];
    let operation = (
        op_name,
        prop::option::of(mutated(filter().prop_map(|f| {
            let (a, rest) = f.split_once(' ').unwrap_or((&f, ""));
            if rest.is_empty() {
                a.to_string()
            } else {
                format!("emails[{f}].value")
            }
        }))),
        prop::option::of(value),
    )
        .prop_map(|(o, p, v)| {
            let mut m = serde_json::Map::new();
            m.insert("op".into(), json!(o));
            if let Some(p) = p {
                m.insert("path".into(), json!(p));
            }
            if let Some(v) = v {
                m.insert("value".into(), v);
            }
            Value::Object(m)
        });
    prop::collection::vec(operation, 0..5).prop_map(|ops| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
            .to_string()
    })
}

/// Bulk requests: methods, paths and `bulkId`s drawn from a few names so that references
/// meet, chain, dangle and loop; data that is a resource, a PATCH request or odd.
fn bulk_body() -> impl Strategy<Value = String> {
    let id = prop::sample::select(vec!["a", "b", "c", "A", "", "bulkId:a", "a/b", "\u{0}"]);
    let method = prop::sample::select(vec!["POST", "PUT", "PATCH", "DELETE", "post", "GET", ""]);
    let path = prop_oneof![
        Just("/Users".to_string()),
        Just("/Groups".to_string()),
        id.clone().prop_map(|i| format!("/Users/bulkId:{i}")),
        id.clone().prop_map(|i| format!("/Groups/bulkId:{i}")),
        Just("/Users/0199e0c2-7b8a-7000-8000-000000000000".to_string()),
        Just("/Users/../Groups".to_string()),
        "/[A-Za-z/:]{0,12}",
    ];
    let data = prop_oneof![
        id.clone().prop_map(|i| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "G", "members": [{"value": format!("bulkId:{i}")}]})),
        Just(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann"})),
        patch_body().prop_map(|p| serde_json::from_str::<Value>(&p).unwrap()),
        id.clone().prop_map(|i| json!(format!("bulkId:{i}"))),
        Just(json!(null)),
        Just(json!([[["bulkId:a"]]])),
    ];
    let operation = (
        method,
        prop::option::of(id),
        prop::option::of(path),
        prop::option::of(data),
        prop::option::of(prop::sample::select(vec!["W/\"1\"", "", "*"])),
    )
        .prop_map(|(m, b, p, d, v)| {
            let mut o = serde_json::Map::new();
            o.insert("method".into(), json!(m));
            if let Some(b) = b {
                o.insert("bulkId".into(), json!(b));
            }
            if let Some(p) = p {
                o.insert("path".into(), json!(p));
            }
            if let Some(d) = d {
                o.insert("data".into(), d);
            }
            if let Some(v) = v {
                o.insert("version".into(), json!(v));
            }
            Value::Object(o)
        });
    (
        prop::collection::vec(operation, 0..12),
        prop::option::of(prop_oneof![
            Just(json!(1)),
            Just(json!(0)),
            Just(json!("2"))
        ]),
        prop::sample::select(vec!["Operations", "operations", "Ops"]),
    )
        .prop_map(|(ops, fail, key)| {
            let mut body =
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]});
            body[key] = Value::Array(ops);
            if let Some(f) = fail {
                body["failOnErrors"] = f;
            }
            body.to_string()
        })
}

fn csv_roster() -> impl Strategy<Value = String> {
    let cell = prop_oneof![
        Just("ann@acme.example".to_string()),
        Just("\"quoted, comma\"".to_string()),
        Just("\"a \"\"b\"\"\"".to_string()),
        Just("\"unterminated".to_string()),
        Just("2026-13-45".to_string()),
        Just("true".to_string()),
        Just("=cmd|' /C calc'!A0".to_string()),
        "[^\r\n,]{0,12}",
    ];
    let row = prop::collection::vec(cell, 0..7).prop_map(|c| c.join(","));
    (
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
        prop::collection::vec(row, 0..6),
    )
        .prop_map(|(nl, rows)| {
            format!(
                "\u{feff}userName,email,givenName,familyName,active,accessEndDate{nl}{}",
                rows.join(nl)
            )
        })
}

fn rule_file() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "id",
        "partners",
        "condition",
        "groups",
        "grants",
        "access_days",
        "access_until",
        "use_partner_end_date",
        "sponsor",
        "mfa",
        "template",
        "language",
        "descripton",
    ]);
    let val = prop_oneof![
        Just("\"r1\"".to_string()),
        Just("[\"acme\"]".to_string()),
        Just("[{ app = \"ehr\", role = \"reader\" }]".to_string()),
        Just("3650".to_string()),
        Just("0".to_string()),
        Just("2027-06-30".to_string()),
        Just("true".to_string()),
        Just("\"../../etc/passwd\"".to_string()),
        filter().prop_map(|f| format!("'{}'", f.replace('\'', ""))),
    ];
    let entry = (key, val).prop_map(|(k, v)| format!("{k} = {v}"));
    prop::collection::vec(entry, 0..8).prop_map(|entries| {
        format!(
            "[[app]]\nid = \"ehr\"\nname = \"EHR\"\ndescription = \"d\"\nlaunch_url = \"https://ehr.example/\"\nroles = [\"reader\"]\n\n[[rule]]\n{}\n",
            entries.join("\n")
        )
    })
}

#[test]
fn parsers_survive_near_valid_input() {
    use guestbridge::scim_core::{filter as f, patch, schema};
    let mut counts = Vec::new();
    counts.push((
        "filter",
        run("filter", mutated(filter()), |s| {
            within_a_second("filter", move || {
                let _ = f::parse_filter(&s);
            })
        }),
    ));
    counts.push((
        "patch_path",
        run(
            "patch_path",
            mutated(filter().prop_map(|f| format!("emails[{f}].value"))),
            |s| {
                within_a_second("patch path", move || {
                    let _ = f::parse_patch_path(&s);
                })
            },
        ),
    ));
    counts.push(("patch_request", run("patch_request", mutated(patch_body()), |s| {
        within_a_second("patch request", move || {
            let Ok(body) = serde_json::from_str::<Value>(&s) else { return };
            if let Ok(ops) = patch::parse_patch_request(&body, 100) {
                let doc = json!({"userName": "ann", "emails": [{"value": "a@b.example", "type": "work"}], "name": {"givenName": "A"}});
                let _ = patch::apply_patch(doc.as_object().unwrap(), &ops, &schema::USER_RESOURCE);
            }
        })
    })));
    counts.push((
        "csv_roster",
        run("csv_roster", mutated(csv_roster()), |s| {
            within_a_second("csv roster", move || {
                let map = guestbridge::import::ColumnMap::default();
                if let Ok(reader) = guestbridge::import::RosterReader::new(s.as_bytes(), &map, None)
                {
                    for r in reader.take(100).flatten() {
                        let _ = r.to_scim();
                    }
                }
            })
        }),
    ));
    counts.push((
        "rule_file",
        run("rule_file", mutated(rule_file()), |s| {
            within_a_second("rule file", move || {
                let _ = guestbridge::mapping::load_sources(&[("rules.toml".to_string(), s)]);
            })
        }),
    ));
    counts.push((
        "bulk_request",
        run("bulk_request", mutated(bulk_body()), |s| {
            within_a_second("bulk request", move || {
                let Ok(body) = serde_json::from_str::<Value>(&s) else {
                    return;
                };
                // The parser finds `Operations` whatever its case, as RFC 7644 §3.10 asks.
                let n = body
                    .as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Operations")))
                    .and_then(|(_, v)| v.as_array())
                    .map_or(0, Vec::len);
                if let Ok((order, stuck)) = guestbridge::scim::bulk_api::plan(&body) {
                    // Each operation runs once or is reported as waiting on a cycle.
                    let mut all: Vec<usize> = order.iter().chain(&stuck).copied().collect();
                    all.sort_unstable();
                    assert_eq!(all, (0..n).collect::<Vec<_>>(), "{s}");
                }
            })
        }),
    ));
    let line: String = counts.iter().map(|(n, c)| format!("{n}={c} ")).collect();
    eprintln!("fuzz executions: {line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz.count");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{}\n", line.trim_end())).unwrap();
}
