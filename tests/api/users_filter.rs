//! Users list filters (RFC 7644 §3.4.2.2) compiled to SQL, on every operator and shape.

use serde_json::json;

use crate::both_backends;
use crate::helpers::{spawn, Backend, Scim};
use crate::users_crud::ENTERPRISE;

both_backends!(
    filters_select_the_right_users,
    unknown_attributes_match_nothing,
    malformed_filters_are_invalid_filter
);

/// Four people with varied attributes; returns their ids in creation order.
async fn seed(scim: &Scim) -> Vec<String> {
    let people = [
        json!({"userName": "Ann.Lee@acme.example", "externalId": "E-1", "active": true, "title": "Staff Nurse",
               "name": {"givenName": "Ann", "familyName": "Lee"},
               "emails": [{"value": "ann@acme.example", "type": "work", "primary": true}, {"value": "ann@home.example", "type": "home"}],
               ENTERPRISE: {"employeeNumber": "1001", "department": "Cardiology"}}),
        json!({"userName": "bob@acme.example", "externalId": "e-2", "active": false, "title": "Surgeon",
               "name": {"givenName": "Bob", "familyName": "Stone"},
               "emails": [{"value": "bob@acme.example", "type": "work"}],
               ENTERPRISE: {"employeeNumber": "1002", "department": "Surgery"}}),
        json!({"userName": "cara@acme.example", "title": "Nurse Practitioner",
               "name": {"givenName": "Cara", "familyName": "Leeds"},
               ENTERPRISE: {"department": "Cardiology"}}),
        json!({"userName": "dan_100%@acme.example", "active": true,
               "emails": [{"value": "dan@partner.example", "type": "work"}]}),
    ];
    let mut ids = Vec::new();
    for p in people {
        ids.push(scim.create_user(&p).await);
    }
    ids
}

async fn matching(scim: &Scim, filter: &str) -> Vec<String> {
    let res = scim.filter_users(filter).await;
    assert_eq!(res.status.as_u16(), 200, "{filter}: {}", res.body);
    let mut ids: Vec<String> = res.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(res.body["totalResults"], ids.len(), "{filter}");
    ids.sort();
    ids
}

async fn filters_select_the_right_users(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let ids = seed(&scim).await;
    let (ann, bob, cara, dan) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let dept = format!(r#"{ENTERPRISE}:department eq "cardiology""#);
    let empno = format!(r#"{ENTERPRISE}:employeeNumber ge "1002""#);
    let by_id = format!(r#"id eq "{ann}""#);
    let cases: Vec<(&str, Vec<&String>)> = vec![
        // userName is case-insensitive (RFC 7643 §4.1.1).
        (r#"userName eq "ann.lee@ACME.example""#, vec![ann]),
        (r#"USERNAME Eq "bob@acme.example""#, vec![bob]),
        (r#"userName ne "bob@acme.example""#, vec![ann, cara, dan]),
        (r#"userName sw "c""#, vec![cara]),
        (r#"userName ew "ACME.EXAMPLE""#, vec![ann, bob, cara, dan]),
        (r#"userName co "100%""#, vec![dan]),
        (r#"userName co "n_1""#, vec![dan]),
        // externalId is caseExact.
        (r#"externalId eq "E-1""#, vec![ann]),
        (r#"externalId eq "e-1""#, vec![]),
        (r#"externalId pr"#, vec![ann, bob]),
        (r#"active eq true"#, vec![ann, cara, dan]),
        (r#"active eq false"#, vec![bob]),
        (r#"name.familyName eq "lee""#, vec![ann]),
        (r#"name.familyName sw "Lee""#, vec![ann, cara]),
        (r#"name.givenName gt "B""#, vec![bob, cara]),
        (r#"name.givenName le "Bob""#, vec![ann, bob]),
        (r#"title co "nurse""#, vec![ann, cara]),
        (r#"emails.value eq "ann@home.example""#, vec![ann]),
        (r#"emails co "@partner""#, vec![dan]),
        (r#"emails.type eq "home""#, vec![ann]),
        (r#"emails pr"#, vec![ann, bob, dan]),
        (r#"name pr"#, vec![ann, bob, cara]),
        (r#"title pr and not (title co "nurse")"#, vec![bob]),
        (
            r#"title co "nurse" or active eq false"#,
            vec![ann, bob, cara],
        ),
        (
            r#"(title co "nurse" or active eq false) and name.familyName sw "Lee""#,
            vec![ann, cara],
        ),
        (
            r#"title co "nurse" or active eq false and name.familyName sw "Lee""#,
            vec![ann, cara],
        ),
        (&dept, vec![ann, cara]),
        (&empno, vec![bob]),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob@acme.example""#,
            vec![bob],
        ),
        (
            r#"emails[type eq "work" and value co "acme"]"#,
            vec![ann, bob],
        ),
        (r#"emails[type eq "home" and value co "partner"]"#, vec![]),
        (r#"emails[not (type eq "work")]"#, vec![ann]),
        (
            r#"meta.created gt "2000-01-01T00:00:00Z""#,
            vec![ann, bob, cara, dan],
        ),
        (r#"meta.lastModified lt "2000-01-01T00:00:00Z""#, vec![]),
        (r#"title eq null"#, vec![dan]),
        (&by_id, vec![ann]),
    ];
    for (filter, expected) in cases {
        let mut expected: Vec<String> = expected.into_iter().cloned().collect();
        expected.sort();
        assert_eq!(matching(&scim, filter).await, expected, "filter: {filter}");
    }
}

async fn unknown_attributes_match_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let ids = seed(&scim).await;
    assert!(matching(&scim, r#"favouriteColour eq "blue""#)
        .await
        .is_empty());
    assert!(matching(&scim, r#"name.nickname eq "x""#).await.is_empty());
    assert_eq!(
        matching(&scim, r#"not (favouriteColour eq "blue")"#)
            .await
            .len(),
        ids.len()
    );
}

async fn malformed_filters_are_invalid_filter(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    for bad in [
        r#"userName eq"#,
        r#"userName equals "x""#,
        r#"userName eq "unterminated"#,
        r#"(userName pr"#,
        r#"userName pr extra"#,
        r#"active gt true"#,
        r#"meta.created gt "yesterday""#,
    ] {
        let res = scim.filter_users(bad).await;
        res.assert_scim_error(400, Some("invalidFilter"));
        assert!(
            res.body["detail"].as_str().unwrap().len() > 10,
            "{bad}: says what is wrong"
        );
    }
    let res = scim.filter_users(r#"userName eq "x" extra"#).await;
    assert!(
        res.body["detail"].as_str().unwrap().contains("position"),
        "{}",
        res.body
    );
}
