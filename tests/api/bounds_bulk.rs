//! Bulk `bulkId` resolution is linear: a chain of 1,000 operations written backwards (each
//! referring to the next one's bulkId) costs about what the same chain written forwards does.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_with, Backend, Scim};

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const CHAIN: usize = 1000;

both_backends!(a_reversed_chain_of_bulk_ids_resolves_in_linear_time);

/// User `i` has bulkId `{tag}{i}` and its nickName refers to `{tag}{next(i)}`.
fn chain(tag: &str, next: impl Fn(usize) -> Option<usize>) -> Value {
    let ops: Vec<Value> = (0..CHAIN)
        .map(|i| {
            let mut data = json!({"userName": format!("{tag}{i}@acme.example")});
            if let Some(j) = next(i) {
                data["nickName"] = json!(format!("bulkId:{tag}{j}"));
            }
            json!({"method": "POST", "path": "/Users", "bulkId": format!("{tag}{i}"), "data": data})
        })
        .collect();
    json!({"schemas": [BULK], "Operations": ops})
}

async fn timed(scim: &Scim, body: &Value) -> (Duration, Vec<Value>) {
    let started = Instant::now();
    let res = scim.post("/Bulk", body).await;
    let took = started.elapsed();
    assert_eq!(res.status, 200, "{}", res.body);
    (took, res.body["Operations"].as_array().unwrap().clone())
}

async fn a_reversed_chain_of_bulk_ids_resolves_in_linear_time(backend: Backend) {
    let app = spawn_with(backend, &[], &[("GUESTBRIDGE_MAX_BODY_BYTES", "1048576")]).await;
    let (_, scim) = app.partner("acme").await;
    let (forward, _) = timed(&scim, &chain("f", |i| i.checked_sub(1))).await;
    let (reversed, results) =
        timed(&scim, &chain("r", |i| Some(i + 1).filter(|j| *j < CHAIN))).await;
    eprintln!("bulk chain of {CHAIN}: forward {forward:?}, reversed {reversed:?}");
    assert_eq!(results.len(), CHAIN);
    assert!(results.iter().all(|r| r["status"] == "201"), "{results:?}");
    // Every reference was substituted by the id of the user it names.
    let id_of = |r: &Value| {
        r["location"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let first = scim.get(&format!("/Users/{}", id_of(&results[0]))).await;
    let second = results.iter().find(|r| r["bulkId"] == "r1").unwrap();
    assert_eq!(first.body["nickName"], id_of(second).as_str());
    // The creates dominate both; cubic resolution made the reversed chain several times slower.
    assert!(
        reversed < forward * 2 + Duration::from_secs(1),
        "reversed {reversed:?} against forward {forward:?}"
    );
}
