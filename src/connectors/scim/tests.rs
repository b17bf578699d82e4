use super::wire::*;
use super::*;
use crate::connectors::{GrantSnapshot, GuestSnapshot};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

fn guest() -> GuestSnapshot {
    GuestSnapshot {
        guest_id: "g-1".into(),
        partner: "acme".into(),
        user_name: "A123".into(),
        email: Some("Ann@Acme.example".into()),
        display_name: Some("Ann Lee".into()),
        given_name: Some("Ann".into()),
        family_name: Some("Lee".into()),
        state: "active".into(),
        version: 1,
        grants: vec![
            GrantSnapshot {
                app: "ehr".into(),
                role: "reader".into(),
                valid_until: None,
            },
            GrantSnapshot {
                app: "pacs".into(),
                role: "viewer".into(),
                valid_until: None,
            },
            GrantSnapshot {
                app: "ehr".into(),
                role: "reader".into(),
                valid_until: None,
            },
        ],
    }
}

fn desired() -> DesiredUser {
    DesiredUser::from_snapshot(&guest(), true)
}

#[test]
fn create_body_carries_external_id_name_emails_and_active() {
    assert_eq!(
        desired().resource(),
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "Ann@Acme.example",
            "externalId": "g-1",
            "displayName": "Ann Lee",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "Ann@Acme.example", "type": "work", "primary": true}],
            "active": true,
        })
    );
}

#[test]
fn user_name_falls_back_to_the_partners_and_blanks_are_absent() {
    let mut g = guest();
    g.email = Some("  ".into());
    g.display_name = None;
    g.given_name = Some(String::new());
    g.family_name = None;
    let body = DesiredUser::from_snapshot(&g, false).resource();
    assert_eq!(
        body,
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "A123",
            "externalId": "g-1",
            "active": false,
        })
    );
}

#[test]
fn no_ops_when_the_target_already_agrees() {
    let existing = json!({
        "id": "u1",
        "userName": "ann@acme.example",
        "externalId": "g-1",
        "displayName": "Ann Lee",
        "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"},
        "emails": [
            {"value": "other@x.example", "type": "home"},
            {"value": "ANN@acme.example", "type": "work", "primary": true}
        ],
        "active": true,
        "title": "Nurse",
        "meta": {"resourceType": "User"}
    });
    assert!(desired().patch_ops(&existing).is_empty());
}

#[test]
fn ops_replace_only_what_differs_and_remove_what_we_no_longer_have() {
    let existing = json!({
        "id": "u1",
        "userName": "old@acme.example",
        "externalId": "g-1",
        "displayName": "Ann Lee",
        "nickName": "A",
        "name": {"givenName": "Anne"},
        "emails": [{"value": "old@acme.example"}],
        "active": false
    });
    let mut want = desired();
    want.display_name = None;
    assert_eq!(
        want.patch_ops(&existing),
        vec![
            json!({"op": "replace", "path": "userName", "value": "Ann@Acme.example"}),
            json!({"op": "remove", "path": "displayName"}),
            json!({"op": "replace", "path": "name.givenName", "value": "Ann"}),
            json!({"op": "replace", "path": "name.familyName", "value": "Lee"}),
            json!({"op": "replace", "path": "emails", "value": [
                {"value": "Ann@Acme.example", "type": "work", "primary": true}
            ]}),
            json!({"op": "replace", "path": "active", "value": true}),
        ]
    );
}

#[test]
fn missing_active_counts_as_active_and_missing_email_is_removed() {
    let mut want = desired();
    want.email = None;
    want.user_name = "A123".into();
    let existing = json!({
        "userName": "a123", "externalId": "g-1", "displayName": "Ann Lee",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": "x@y"}]
    });
    assert_eq!(
        want.patch_ops(&existing),
        vec![json!({"op": "remove", "path": "emails"})]
    );
}

#[test]
fn put_body_keeps_foreign_attributes_and_drops_read_only_ones() {
    let existing = json!({
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "u1",
        "userName": "old@acme.example",
        "externalId": "g-1",
        "title": "Nurse",
        "name": {"givenName": "Anne", "middleName": "B"},
        "emails": [{"value": "old@acme.example"}],
        "groups": [{"value": "grp"}],
        "meta": {"version": "W/\"1\""},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "ICU"},
        "active": true
    });
    let mut want = desired();
    want.active = false;
    want.display_name = None;
    let put = want.apply(&existing);
    assert_eq!(
        put,
        json!({
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "u1",
            "userName": "Ann@Acme.example",
            "externalId": "g-1",
            "title": "Nurse",
            "name": {"givenName": "Ann", "middleName": "B", "familyName": "Lee"},
            "emails": [{"value": "Ann@Acme.example", "type": "work", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "ICU"},
            "active": false
        })
    );
    // Applying again changes nothing PATCH would change.
    assert!(want.patch_ops(&put).is_empty());
}

#[test]
fn group_names_are_prefixed_and_deduplicated() {
    let names: Vec<String> = group_names("gb-", &guest()).into_iter().collect();
    assert_eq!(names, vec!["gb-ehr:reader", "gb-pacs:viewer"]);
}

#[test]
fn membership_plan_adds_missing_and_removes_extra_prefixed_groups() {
    let wanted: BTreeSet<String> = ["gb-ehr:reader", "gb-pacs:viewer"]
        .into_iter()
        .map(String::from)
        .collect();
    let current: BTreeMap<String, String> = [("gb-ehr:reader", "1"), ("gb-lab:tech", "3")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let plan = MembershipPlan::new(&wanted, &current);
    assert_eq!(plan.add, vec!["gb-pacs:viewer".to_string()]);
    assert_eq!(
        plan.remove,
        vec![("gb-lab:tech".to_string(), "3".to_string())]
    );
    assert!(MembershipPlan::new(&wanted, &current).add.len() == 1);
    let same = MembershipPlan::new(&BTreeSet::new(), &BTreeMap::new());
    assert!(same.is_empty());
}

#[test]
fn filter_literals_escape_quotes_and_backslashes() {
    assert_eq!(filter_literal("g-1"), "\"g-1\"");
    assert_eq!(filter_literal("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(
        remove_member_op("u\"1"),
        json!({"op": "remove", "path": "members[value eq \"u\\\"1\"]"})
    );
}

#[test]
fn member_operations_have_the_rfc_shapes() {
    assert_eq!(
        patch_request(vec![add_member_op("u1")]),
        json!({
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": "u1"}]}]
        })
    );
    let group = json!({
        "schemas": [GROUP_SCHEMA], "id": "g", "displayName": "gb-a:b",
        "members": [{"value": "u0", "display": "Zed", "$ref": "https://x/Users/u0"}],
        "meta": {}
    });
    assert_eq!(
        group_with_member(&group, "u1", true)["members"],
        json!([{"value": "u0"}, {"value": "u1"}])
    );
    assert_eq!(group_with_member(&group, "u0", false)["members"], json!([]));
    assert!(group_with_member(&group, "u1", true).get("meta").is_none());
}

#[test]
fn capabilities_follow_the_service_provider_config() {
    let gb = json!({
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": 1000},
        "filter": {"supported": true, "maxResults": 1000}
    });
    assert_eq!(
        Capabilities::from_config(&gb),
        Capabilities {
            patch: true,
            filter: true,
            page_size: 100
        }
    );
    let small =
        json!({"patch": {"supported": false}, "filter": {"supported": true, "maxResults": 20}});
    assert_eq!(
        Capabilities::from_config(&small),
        Capabilities {
            patch: false,
            filter: true,
            page_size: 20
        }
    );
    assert_eq!(Capabilities::from_config(&json!({})), Capabilities::MINIMAL);
}

#[test]
fn list_pages_tolerate_missing_resources() {
    let page = ListPage::parse(&json!({"totalResults": 0}));
    assert!(page.resources.is_empty());
    assert_eq!(page.total, Some(0));
}

#[tokio::test]
async fn debug_hides_the_token() {
    let (_dir, db) = crate::store::test_db().await;
    let target = ScimTarget {
        base_url: "https://x.example/scim/v2".into(),
        bearer_token: "tok-secret".into(),
        group_prefix: "gb-".into(),
    };
    assert!(!format!("{target:?}").contains("tok-secret"));
    let connector = ScimConnector::new("scim", target, db.clone()).unwrap();
    assert!(!format!("{connector:?}").contains("tok-secret"));
    let empty_prefix = ScimTarget {
        base_url: "https://x.example/scim/v2".into(),
        bearer_token: "t".into(),
        group_prefix: String::new(),
    };
    assert!(ScimConnector::new("scim", empty_prefix, db).is_err());
}
