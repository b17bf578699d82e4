//! The Graph connector against a stand-in: a local actix-web server that plays Entra ID's
//! token endpoint and the part of Microsoft Graph v1.0 the connector uses, checking every
//! request against the shapes Microsoft documents (client-credentials form fields, bearer
//! tokens, the invitation resource, `$ref` bodies, `accountEnabled` PATCH, OData `$filter`)
//! and answering as Graph does (invitations of a known address return the existing user, a
//! second `$ref` add is a 400 "already exist", missing objects are 404). It is not
//! Microsoft Graph; the tests are named `graph_stand_in_*` to say so.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use actix_web::App;
use guestbridge::connectors::graph::{GraphConnector, GraphTarget};
use guestbridge::connectors::{Connector, DeliveryError, EventKind};

use guestbridge::store::Db;

use crate::both_backends;
use crate::graph_stand_in::*;
use crate::support::{database, event, guest, owned, serve, Backend};

struct StandIn {
    url: String,
    state: Shared,
    /// Where the connectors keep their ownership records.
    db: Db,
    _dir: tempfile::TempDir,
}

impl StandIn {
    async fn start() -> Self {
        Self::start_on(Backend::Sqlite).await
    }

    async fn start_on(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = database(backend, &dir).await;
        let state: Shared = Arc::new(Mutex::new(Tenant::default()));
        let data = web::Data::new(state.clone());
        let url = serve(move || {
            App::new()
                .app_data(data.clone())
                .route("/tenant-id/oauth2/v2.0/token", web::post().to(token))
                .default_service(web::to(graph))
        });
        {
            let mut t = state.lock().unwrap();
            t.base = format!("{url}/v1.0");
            for gid in ["grp-ehr", "grp-pacs", "grp-lab", "grp-not-ours"] {
                t.groups.insert(gid.into(), BTreeSet::new());
            }
        }
        StandIn {
            url,
            state,
            db,
            _dir: dir,
        }
    }

    fn target(&self) -> GraphTarget {
        GraphTarget {
            base_url: format!("{}/v1.0", self.url),
            token_url: format!("{}/tenant-id/oauth2/v2.0/token", self.url),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_url: REDIRECT.into(),
            group_ids: [
                ("ehr:reader", "grp-ehr"),
                ("pacs:viewer", "grp-pacs"),
                ("lab:tech", "grp-lab"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    fn connector(&self) -> GraphConnector {
        GraphConnector::new("graph", self.target(), self.db.clone()).unwrap()
    }

    fn tenant(&self) -> std::sync::MutexGuard<'_, Tenant> {
        self.state.lock().unwrap()
    }

    /// The groups (by id) the user with this mail is in, and whether it is enabled.
    fn user(&self, mail: &str) -> Option<(String, BTreeSet<String>, bool)> {
        let t = self.tenant();
        let (id, user) = t.users.iter().find(|(_, u)| u.mail == mail)?;
        let groups = t
            .groups
            .iter()
            .filter(|(_, m)| m.contains(id))
            .map(|(g, _)| g.clone())
            .collect();
        Some((id.clone(), groups, user.enabled))
    }

    fn assert_no_violations(&self) {
        let t = self.tenant();
        assert!(t.violations.is_empty(), "stand-in saw: {:?}", t.violations);
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn graph_stand_in_lifecycle_with_one_token_for_every_delivery() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let mail = "ann.lee@partner.example";

    let mut ann = guest(
        "g-ann",
        mail,
        "invited",
        &[("ehr", "reader"), ("pacs", "viewer"), ("x-ray", "unmapped")],
    );
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let (user_id, groups, enabled) = graph.user(mail).unwrap();
    assert_eq!(groups, set(&["grp-ehr", "grp-pacs"]));
    assert!(enabled);
    assert_eq!(graph.tenant().users[&user_id].display_name, "Ann Lee");
    assert_eq!(
        connector.user_id_of("g-ann").await.unwrap(),
        Some(user_id.clone())
    );

    // A group someone else manages is never touched.
    graph
        .tenant()
        .groups
        .get_mut("grp-not-ours")
        .unwrap()
        .insert(user_id.clone());

    // Grants change: one group stays, one goes, one comes.
    ann.state = "active".into();
    ann.display_name = Some("Dr Ann Lee".into());
    ann.grants.retain(|g| g.app == "ehr");
    ann.grants.push(guestbridge::connectors::GrantSnapshot {
        app: "lab".into(),
        role: "tech".into(),
        valid_until: None,
    });
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let (same_id, groups, _) = graph.user(mail).unwrap();
    assert_eq!(
        same_id, user_id,
        "a second invitation returns the same user"
    );
    assert_eq!(graph.tenant().users[&user_id].display_name, "Dr Ann Lee");
    assert_eq!(groups, set(&["grp-ehr", "grp-lab", "grp-not-ours"]));

    // Delivering the same event again is harmless.
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();

    // Suspend: out of every configured group, disabled.
    ann.state = "suspended".into();
    connector
        .deliver(&event("e3", EventKind::GuestSuspended, ann.clone()))
        .await
        .unwrap();
    let (_, groups, enabled) = graph.user(mail).unwrap();
    assert_eq!(groups, set(&["grp-not-ours"]));
    assert!(!enabled);

    // Restored: enabled again, groups back.
    ann.state = "active".into();
    connector
        .deliver(&event("e4", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let (_, groups, enabled) = graph.user(mail).unwrap();
    assert_eq!(groups, set(&["grp-ehr", "grp-lab", "grp-not-ours"]));
    assert!(enabled);

    // Removed, twice (the second finds nobody by mail and succeeds).
    ann.state = "removed".into();
    let removed = event("e5", EventKind::GuestRemoved, ann.clone());
    connector.deliver(&removed).await.unwrap();
    assert!(graph.user(mail).is_none());
    assert_eq!(connector.user_id_of("g-ann").await.unwrap(), None);
    connector.deliver(&removed).await.unwrap();

    assert_eq!(graph.tenant().token_requests, 1, "the token is cached");
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_already_a_member_is_success() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader")],
    );
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    // memberOf now misses the membership, so the connector adds again and gets Graph's 400.
    graph.tenant().hide_memberships = true;
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    assert!(
        graph
            .tenant()
            .requests
            .iter()
            .filter(|r| r.as_str() == "POST /groups/grp-ehr/members/$ref")
            .count()
            == 2
    );
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_429_is_transient_with_the_retry_after() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    graph.tenant().inject.push_back((429, Some("17")));
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader")],
    );
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient { retry_after: Some(d), .. } if *d == Duration::from_secs(17)),
        "{err:?}"
    );
    // The retry goes through.
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    assert_eq!(
        graph.user("ann@partner.example").unwrap().1,
        set(&["grp-ehr"])
    );
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_5xx_is_transient_and_retries_complete_the_change() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader"), ("pacs", "viewer")],
    );
    // Each attempt fails at its first Graph request; nothing is half-done that a retry
    // would not finish.
    for status in [503, 500, 502] {
        graph.tenant().inject.push_back((status, None));
        let err = connector
            .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{status}: {err:?}");
        assert_eq!(err.retry_after(), None);
    }
    graph
        .tenant()
        .inject
        .push_back((503, Some("Wed, 21 Oct 2015 07:28:00 GMT")));
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(Duration::ZERO),
        "a past date means now"
    );
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    let (_, groups, _) = graph.user("ann@partner.example").unwrap();
    assert_eq!(groups, set(&["grp-ehr", "grp-pacs"]));
    assert_eq!(graph.tenant().token_requests, 1);
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_401_renews_the_token_once() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let ann = guest("g-ann", "ann@partner.example", "active", &[]);
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    assert_eq!(graph.tenant().token_requests, 1);

    // The tenant revokes the token: the next request gets 401, a new token, and goes on.
    graph.tenant().valid_tokens.clear();
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    assert_eq!(graph.tenant().token_requests, 2);

    // Refused even with a fresh token: transient, after exactly one renewal.
    graph.tenant().refuse_all_tokens = true;
    let err = connector
        .deliver(&event("e3", EventKind::GuestUpserted, ann))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(graph.tenant().token_requests, 3);
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_refused_client_secret_is_permanent_and_not_leaked() {
    let graph = StandIn::start().await;
    let mut target = graph.target();
    target.client_secret = "wrong-secret-value".into();
    let connector = GraphConnector::new("graph", target, graph.db.clone()).unwrap();
    let ann = guest("g-ann", "ann@partner.example", "active", &[]);
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann))
        .await
        .unwrap_err();
    match &err {
        DeliveryError::Permanent { reason } => {
            assert!(reason.contains("invalid_client"), "{reason}");
            assert!(!reason.contains("wrong-secret-value"));
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_guest_without_address_is_permanent_on_invite_and_noop_on_removal() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let mut nobody = guest("g-x", "unused", "active", &[]);
    nobody.email = None;
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, nobody.clone()))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    connector
        .deliver(&event("e2", EventKind::GuestRemoved, nobody))
        .await
        .unwrap();
    assert!(graph.tenant().requests.is_empty());
}

#[tokio::test]
async fn graph_stand_in_concurrent_deliveries_share_one_token_request() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let events: Vec<_> = (0..6)
        .map(|i| {
            let g = guest(
                &format!("g-{i}"),
                &format!("p{i}@partner.example"),
                "active",
                &[("ehr", "reader")],
            );
            event(&format!("e{i}"), EventKind::GuestUpserted, g)
        })
        .collect();
    let results = futures_util::future::join_all(events.iter().map(|e| connector.deliver(e))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(graph.tenant().token_requests, 1);
    assert_eq!(graph.tenant().groups["grp-ehr"].len(), 6);
    graph.assert_no_violations();
}

both_backends!(
    graph_stand_in_never_touches_a_member_who_has_the_guests_mail,
    graph_stand_in_adopts_an_existing_guest_user_exactly_once,
    graph_stand_in_ids_come_from_the_table_after_a_restart
);

impl StandIn {
    /// A user created in the tenant by someone else (not through this connector).
    fn add_user(&self, id: &str, mail: &str, user_type: &'static str) {
        self.tenant().users.insert(
            id.to_string(),
            User {
                mail: mail.to_string(),
                display_name: "Dr Sam Staff".into(),
                enabled: true,
                user_type,
            },
        );
    }

    fn requests_to(&self, user_id: &str) -> Vec<String> {
        self.tenant()
            .requests
            .iter()
            .filter(|r| !r.starts_with("GET") && r.contains(user_id))
            .cloned()
            .collect()
    }
}

/// A partner sends a guest whose address is a staff member's: the member is never
/// enabled, renamed, put in groups, disabled or deleted, and the upsert is refused for good
/// with a reason that names the conflict.
async fn graph_stand_in_never_touches_a_member_who_has_the_guests_mail(backend: Backend) {
    let graph = StandIn::start_on(backend).await;
    let staff = "staff-0000-aaaa-bbbb-cccc-dddddddddddd";
    let mail = "sam.staff@hospital.example";
    graph.add_user(staff, mail, "Member");
    graph
        .tenant()
        .groups
        .get_mut("grp-lab")
        .unwrap()
        .insert(staff.into());
    let connector = graph.connector();
    let mut impostor = guest("g-imp", mail, "active", &[("ehr", "reader")]);

    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, impostor.clone()))
        .await
        .unwrap_err();
    match &err {
        DeliveryError::Permanent { reason } => assert!(
            reason.contains(&format!(
                "a member account already uses mail {mail}; not adopting"
            )),
            "{reason}"
        ),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    impostor.state = "suspended".into();
    connector
        .deliver(&event("e2", EventKind::GuestSuspended, impostor.clone()))
        .await
        .unwrap();
    impostor.state = "removed".into();
    connector
        .deliver(&event("e3", EventKind::GuestRemoved, impostor))
        .await
        .unwrap();

    let (id, groups, enabled) = graph.user(mail).expect("the member still exists");
    assert_eq!(id, staff);
    assert!(enabled, "the member is still enabled");
    assert_eq!(
        groups,
        set(&["grp-lab"]),
        "the member's groups are as they were"
    );
    assert_eq!(graph.tenant().users[staff].display_name, "Dr Sam Staff");
    assert_eq!(graph.requests_to(staff), Vec::<String>::new());
    assert_eq!(owned(&graph.db, "graph", "g-imp").await, None);
    graph.assert_no_violations();
}

/// A guest invited before Guestbridge kept records (or by hand) is adopted by mail, once:
/// the record is written and later deliveries use it.
async fn graph_stand_in_adopts_an_existing_guest_user_exactly_once(backend: Backend) {
    let graph = StandIn::start_on(backend).await;
    let existing = "guest-000-aaaa-bbbb-cccc-dddddddddddd";
    let mail = "ann.lee@partner.example";
    graph.add_user(existing, mail, "Guest");
    let mut ann = guest("g-ann", mail, "active", &[("ehr", "reader")]);

    graph
        .connector()
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    assert_eq!(
        owned(&graph.db, "graph", "g-ann").await,
        Some((existing.to_string(), true))
    );
    assert_eq!(graph.user(mail).unwrap().1, set(&["grp-ehr"]));
    assert!(
        !graph
            .tenant()
            .requests
            .iter()
            .any(|r| r == "POST /invitations"),
        "an adopted guest is not invited again"
    );

    ann.state = "suspended".into();
    graph
        .connector()
        .deliver(&event("e2", EventKind::GuestSuspended, ann.clone()))
        .await
        .unwrap();
    ann.state = "active".into();
    graph
        .connector()
        .deliver(&event("e3", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    assert_eq!(graph.tenant().mail_lookups, 1, "looked up by mail once");
    assert_eq!(graph.tenant().users.len(), 1, "no second user");
    assert!(graph.user(mail).unwrap().2);
    graph.assert_no_violations();
}

/// After a restart (a new connector on the same database) suspension and removal find the
/// user by its recorded id, with no look-up by mail; a second instance shares the records.
async fn graph_stand_in_ids_come_from_the_table_after_a_restart(backend: Backend) {
    let graph = StandIn::start_on(backend).await;
    let mail = "o'neil@partner.example";
    let mut bob = guest("g-bob", mail, "active", &[("ehr", "reader")]);
    graph
        .connector()
        .deliver(&event("e1", EventKind::GuestUpserted, bob.clone()))
        .await
        .unwrap();
    let (user_id, _, _) = graph.user(mail).unwrap();
    assert_eq!(
        owned(&graph.db, "graph", "g-bob").await,
        Some((user_id.clone(), false)),
        "the invited user is recorded as created"
    );
    assert_eq!(
        graph.tenant().mail_lookups,
        1,
        "a guest without a record is looked up (to adopt) before inviting"
    );
    graph.tenant().mail_lookups = 0;

    let restarted = graph.connector();
    bob.state = "suspended".into();
    restarted
        .deliver(&event("e2", EventKind::GuestSuspended, bob.clone()))
        .await
        .unwrap();
    let (_, groups, enabled) = graph.user(mail).unwrap();
    assert!(groups.is_empty() && !enabled);
    bob.state = "removed".into();
    graph
        .connector()
        .deliver(&event("e3", EventKind::GuestRemoved, bob))
        .await
        .unwrap();
    assert!(graph.user(mail).is_none());
    assert_eq!(graph.tenant().mail_lookups, 0, "no look-up by mail");
    assert_eq!(owned(&graph.db, "graph", "g-bob").await, None);

    // A pending guest is not invited at all.
    let carol = guest("g-carol", "carol@partner.example", "pending_approval", &[]);
    restarted
        .deliver(&event("e4", EventKind::GuestUpserted, carol))
        .await
        .unwrap();
    assert!(graph.user("carol@partner.example").is_none());
    graph.assert_no_violations();
}
