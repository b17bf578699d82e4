use super::*;

fn guest() -> GuestSnapshot {
    GuestSnapshot {
        guest_id: "g1".into(),
        partner: "acme".into(),
        user_name: "A123".into(),
        email: Some("o'neil@acme.example".into()),
        display_name: None,
        given_name: Some("Ann".into()),
        family_name: Some("O'Neil".into()),
        state: "active".into(),
        grants: vec![],
        version: 1,
    }
}

#[test]
fn invitation_body_has_the_documented_fields() {
    let body = invitation_body(&guest(), "o'neil@acme.example", "https://apps.example/");
    assert_eq!(
        body,
        json!({
            "invitedUserEmailAddress": "o'neil@acme.example",
            "invitedUserDisplayName": "Ann O'Neil",
            "inviteRedirectUrl": "https://apps.example/",
            "sendInvitationMessage": false,
        })
    );
}

#[test]
fn addresses_and_names_fall_back() {
    let mut g = guest();
    g.email = None;
    assert_eq!(invitation_address(&g), None);
    g.user_name = "ann@acme.example".into();
    assert_eq!(invitation_address(&g), Some("ann@acme.example"));
    g.given_name = None;
    g.family_name = None;
    assert_eq!(display_name(&g), "ann@acme.example");
    g.display_name = Some("Dr Ann".into());
    assert_eq!(display_name(&g), "Dr Ann");
}

#[test]
fn mail_filter_escapes_quotes() {
    assert_eq!(
        guest_mail_filter("o'neil@x"),
        "mail eq 'o''neil@x' and userType eq 'Guest'"
    );
}

#[tokio::test]
async fn debug_hides_the_client_secret() {
    let (_dir, db) = crate::store::test_db().await;
    let target = GraphTarget {
        base_url: default_base_url(),
        token_url: "https://login.example/t/oauth2/v2.0/token".into(),
        client_id: "cid".into(),
        client_secret: "very-secret".into(),
        redirect_url: "https://apps.example".into(),
        group_ids: HashMap::new(),
    };
    assert!(!format!("{target:?}").contains("very-secret"));
    let connector = GraphConnector::new("graph", target, db).unwrap();
    assert!(!format!("{connector:?}").contains("very-secret"));
}
