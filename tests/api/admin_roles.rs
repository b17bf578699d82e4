//! Every `/api/v1` route × every role: admin (everything), auditor (reads everything, changes
//! nothing), partner-admin of acme, partner-admin of beta (one partner each) and a sponsor
//! (the guests they sponsor). Each row names the status each role gets; lists are checked
//! to hold only rows within the caller's scope; a row outside the scope answers 404 and a
//! change the role may not make 403, before anything is written.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{read, spawn_with_rules, test_actor, Backend, Res, TestApp};
use guestbridge::domain::{AdminRole, PartnerSlug};
use guestbridge::services::admin_auth::RoleGrant;
use guestbridge::services::partners;

both_backends!(each_route_answers_each_role_within_its_scope);

pub const RULES: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = "Shared record"
launch_url = "https://ehr.example/launch"
roles = ["reader"]

[[partner]]
slug = "acme"
approval = "admin"

[[partner]]
slug = "beta"
approval = "admin"

[[rule]]
id = "greys"
condition = 'title eq "grey"'
grants = [{ app = "ehr", role = "reader" }]
sponsor = "Dr.Grey@hospital.example"

[[rule]]
id = "everyone"
grants = [{ app = "ehr", role = "reader" }]
"#;

/// The roles of the table, in column order.
const ROLES: [&str; 5] = ["admin", "auditor", "pa_acme", "pa_beta", "sponsor"];

struct Callers {
    tokens: Vec<(String, String)>,
}

impl Callers {
    fn token(&self, role: &str) -> &str {
        &self.tokens.iter().find(|(r, _)| r == role).unwrap().1
    }
}

async fn issue(
    app: &TestApp,
    role: AdminRole,
    partner: Option<&str>,
    sponsor: Option<&str>,
) -> String {
    let grant = RoleGrant {
        role,
        partner: partner.map(|p| PartnerSlug::parse(p).unwrap()),
        sponsor: sponsor.map(str::to_string),
    };
    let issued = partners::issue_admin_token_with_role(&app.deps, &test_actor(), "t", None, &grant)
        .await
        .unwrap();
    crate::log_scan::register_secret(&issued.secret);
    issued.secret
}

async fn call(app: &TestApp, token: Option<&str>, method: Method, path: &str) -> Res {
    let mut req = app
        .client
        .request(method.clone(), format!("{}/api/v1{path}", app.address));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if method == Method::POST && path.starts_with("/imports") {
        let csv = "userName,givenName,familyName,email\nzed@acme.example,Zed,Z,zed@acme.example\n";
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("roster.csv"),
        );
        req = req.multipart(form);
    }
    read(req.send().await.unwrap()).await
}

async fn person(scim: &crate::helpers::Scim, user_name: &str, title: &str) -> String {
    scim.create_user(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "title": title,
        "emails": [{"value": user_name, "primary": true}],
    }))
    .await
}

fn ids(body: &Value, list: &str, key: &str) -> BTreeSet<String> {
    body[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {body}"))
        .iter()
        .map(|g| g[key].as_str().unwrap().to_string())
        .collect()
}

async fn wait_import(app: &TestApp, token: &str, id: &str) {
    for _ in 0..300 {
        let r = call(app, Some(token), Method::GET, &format!("/imports/{id}")).await;
        if r.body["status"] != "running" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

async fn each_route_answers_each_role_within_its_scope(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    let (_, acme) = app.partner("acme").await;
    let (_, beta) = app.partner("beta").await;
    let users = [
        person(&acme, "a1@acme.example", "grey").await,
        person(&acme, "a2@acme.example", "other").await,
        person(&beta, "b1@beta.example", "grey").await,
        person(&beta, "b2@beta.example", "other").await,
    ];
    let callers = Callers {
        tokens: vec![
            (
                "admin".into(),
                issue(&app, AdminRole::Admin, None, None).await,
            ),
            (
                "auditor".into(),
                issue(&app, AdminRole::Auditor, None, None).await,
            ),
            (
                "pa_acme".into(),
                issue(&app, AdminRole::PartnerAdmin, Some("acme"), None).await,
            ),
            (
                "pa_beta".into(),
                issue(&app, AdminRole::PartnerAdmin, Some("beta"), None).await,
            ),
            // The scope compares case-insensitively with the sponsor the rules set.
            (
                "sponsor".into(),
                issue(
                    &app,
                    AdminRole::Sponsor,
                    None,
                    Some("dr.grey@HOSPITAL.example"),
                )
                .await,
            ),
        ],
    };
    let admin = callers.token("admin");
    let all = call(&app, Some(admin), Method::GET, "/guests").await;
    let guest_of = |user: &str| -> String {
        all.body["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["user_id"] == user)
            .unwrap_or_else(|| panic!("no guest for {user}: {}", all.body))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let [a1, a2, b1, b2] = [0, 1, 2, 3].map(|i| guest_of(&users[i]));

    // One import of each partner, a partner token of acme to revoke, an admin token to revoke.
    let mut import_of = Vec::new();
    for p in ["acme", "beta"] {
        let r = call(
            &app,
            Some(admin),
            Method::POST,
            &format!("/imports?partner={p}&dry_run=true"),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        wait_import(&app, admin, &id).await;
        import_of.push(id);
    }
    let (imp_a, imp_b) = (import_of[0].clone(), import_of[1].clone());
    let acme_token = partners::partner_tokens(&app.deps, &PartnerSlug::parse("acme").unwrap())
        .await
        .unwrap()[0]
        .id
        .clone();
    let spare = partners::issue_named_admin_token(&app.deps, &test_actor(), "spare", None)
        .await
        .unwrap();
    crate::log_scan::register_secret(&spare.secret);

    // (method, path, (role, status) in the order tried). Rows that change something try
    // the refused roles first, then the one that may; reads try every role.
    type Row = (Method, String, Vec<(&'static str, u16)>);
    let s = |v: [u16; 5]| ROLES.into_iter().zip(v).collect::<Vec<_>>();
    let only = |pairs: &[(&'static str, u16)]| pairs.to_vec();
    let get = Method::GET;
    let post = Method::POST;
    let delete = Method::DELETE;
    let table: Vec<Row> = vec![
        (get.clone(), "/guests".into(), s([200, 200, 200, 200, 200])),
        (
            get.clone(),
            "/guests?partner=acme".into(),
            s([200, 200, 200, 200, 200]),
        ),
        (
            get.clone(),
            format!("/guests/{a2}"),
            s([200, 200, 200, 404, 404]),
        ),
        (
            get.clone(),
            format!("/guests/{b1}"),
            s([200, 200, 404, 200, 200]),
        ),
        (
            get.clone(),
            format!("/guests/{a1}/explain"),
            s([200, 200, 200, 404, 200]),
        ),
        (
            get.clone(),
            format!("/guests/{b2}/explain"),
            s([200, 200, 404, 200, 404]),
        ),
        (
            post.clone(),
            format!("/guests/{a1}/approve"),
            only(&[("auditor", 403), ("pa_beta", 404), ("sponsor", 200)]),
        ),
        (
            post.clone(),
            format!("/guests/{a2}/approve"),
            only(&[
                ("sponsor", 404),
                ("pa_beta", 404),
                ("auditor", 403),
                ("pa_acme", 200),
            ]),
        ),
        (
            post.clone(),
            format!("/guests/{b1}/approve"),
            only(&[("pa_acme", 404), ("admin", 200)]),
        ),
        (
            post.clone(),
            format!("/guests/{b2}/approve"),
            only(&[("sponsor", 404), ("pa_beta", 200)]),
        ),
        (
            post.clone(),
            format!("/guests/{a1}/invitation"),
            only(&[("auditor", 403), ("pa_beta", 404), ("sponsor", 200)]),
        ),
        (
            delete.clone(),
            format!("/guests/{a1}/invitation"),
            only(&[
                ("sponsor", 403),
                ("auditor", 403),
                ("pa_beta", 404),
                ("pa_acme", 200),
            ]),
        ),
        (
            post.clone(),
            format!("/guests/{b1}/mfa/reset"),
            only(&[
                ("sponsor", 403),
                ("auditor", 403),
                ("pa_acme", 404),
                ("pa_beta", 200),
            ]),
        ),
        (get.clone(), "/imports".into(), s([200, 200, 200, 200, 403])),
        (
            get.clone(),
            format!("/imports/{imp_a}"),
            s([200, 200, 200, 404, 403]),
        ),
        (
            get.clone(),
            format!("/imports/{imp_b}/errors.csv"),
            s([200, 200, 404, 200, 403]),
        ),
        (
            post.clone(),
            "/imports?partner=acme&dry_run=true".into(),
            only(&[
                ("auditor", 403),
                ("sponsor", 403),
                ("pa_beta", 404),
                ("pa_acme", 202),
            ]),
        ),
        (
            get.clone(),
            "/partners/acme/tokens".into(),
            s([200, 200, 200, 404, 403]),
        ),
        (
            delete.clone(),
            format!("/partners/acme/tokens/{acme_token}"),
            only(&[
                ("auditor", 403),
                ("sponsor", 403),
                ("pa_beta", 404),
                ("pa_acme", 204),
            ]),
        ),
        (
            get.clone(),
            "/admin-tokens".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            delete.clone(),
            format!("/admin-tokens/{}", spare.id),
            only(&[
                ("auditor", 403),
                ("pa_acme", 403),
                ("sponsor", 403),
                ("admin", 204),
            ]),
        ),
        (
            get.clone(),
            "/mappings".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            post.clone(),
            "/mappings/diff".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            post.clone(),
            "/mappings/reload".into(),
            only(&[
                ("auditor", 403),
                ("pa_acme", 403),
                ("sponsor", 403),
                ("admin", 200),
            ]),
        ),
        (get.clone(), "/sync".into(), s([200, 200, 403, 403, 403])),
        (
            get.clone(),
            "/partners".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            get.clone(),
            "/partners/acme".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            post.clone(),
            "/partners".into(),
            only(&[
                ("auditor", 403),
                ("pa_acme", 403),
                ("sponsor", 403),
                ("admin", 400),
            ]),
        ),
        (
            Method::PATCH,
            "/partners/acme".into(),
            only(&[
                ("auditor", 403),
                ("pa_acme", 403),
                ("pa_beta", 403),
                ("sponsor", 403),
                ("admin", 400),
            ]),
        ),
        (
            post.clone(),
            "/partners/beta/disable".into(),
            only(&[("auditor", 403), ("pa_beta", 403), ("sponsor", 403)]),
        ),
        (
            post.clone(),
            "/partners/beta/enable".into(),
            only(&[("auditor", 403), ("pa_beta", 403), ("sponsor", 403)]),
        ),
        (
            post.clone(),
            "/partners/acme/tokens".into(),
            only(&[
                ("auditor", 403),
                ("sponsor", 403),
                ("pa_beta", 404),
                ("pa_acme", 201),
            ]),
        ),
        (get.clone(), "/jobs".into(), s([200, 200, 403, 403, 403])),
        (
            get.clone(),
            "/jobs/housekeeping/runs".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            post.clone(),
            "/jobs/housekeeping/run".into(),
            only(&[("auditor", 403), ("pa_acme", 403), ("sponsor", 403)]),
        ),
        (get.clone(), "/audit".into(), s([200, 200, 403, 403, 403])),
        (
            get.clone(),
            "/audit/export.csv".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            get.clone(),
            "/audit/verify".into(),
            s([200, 200, 403, 403, 403]),
        ),
        (
            post.clone(),
            "/guests".into(),
            only(&[
                ("auditor", 403),
                ("pa_acme", 403),
                ("sponsor", 403),
                ("admin", 400),
            ]),
        ),
        (
            post.clone(),
            format!("/guests/{a2}/suspend"),
            only(&[("sponsor", 403), ("auditor", 403), ("pa_beta", 404)]),
        ),
        (
            post.clone(),
            format!("/guests/{b1}/suspend"),
            only(&[("sponsor", 403), ("pa_acme", 404)]),
        ),
        (
            post.clone(),
            format!("/guests/{a2}/resume"),
            only(&[("auditor", 403), ("pa_beta", 404)]),
        ),
        (
            post.clone(),
            format!("/guests/{a2}/remove"),
            only(&[("auditor", 403), ("sponsor", 403), ("pa_beta", 404)]),
        ),
        (
            post.clone(),
            format!("/guests/{a1}/grants/ehr/extend"),
            only(&[("sponsor", 403), ("auditor", 403), ("pa_beta", 404)]),
        ),
        (
            delete.clone(),
            format!("/guests/{a1}/grants/ehr"),
            only(&[("sponsor", 403), ("auditor", 403), ("pa_beta", 404)]),
        ),
        // Past the role check, the admin reaches the handler: no such dead letter, no target.
        (
            post.clone(),
            "/sync/events/00000000-0000-0000-0000-000000000000/replay".into(),
            s([404, 403, 403, 403, 403]),
        ),
        (
            post.clone(),
            "/sync/targets/none/reconcile?dry_run=true".into(),
            s([404, 403, 403, 403, 403]),
        ),
    ];

    let mut failures = Vec::new();
    for (method, path, statuses) in &table {
        // Nobody without a credential.
        let anonymous = call(&app, None, method.clone(), path).await;
        if anonymous.status != 401 {
            failures.push(format!("{method} {path} anonymous: {}", anonymous.status));
        }
        for &(role, want) in statuses {
            let res = call(&app, Some(callers.token(role)), method.clone(), path).await;
            if res.status.as_u16() != want {
                failures.push(format!(
                    "{method} {path} as {role}: {} (want {want}) {}",
                    res.status, res.body
                ));
                continue;
            }
            if want != 200 {
                continue;
            }
            if path.starts_with("/guests?") || path == "/guests" {
                let listed = ids(&res.body, "guests", "id");
                let expected: BTreeSet<String> = match (role, path.contains("partner=acme")) {
                    ("admin" | "auditor", false) => [&a1, &a2, &b1, &b2].map(String::clone).into(),
                    ("admin" | "auditor" | "pa_acme", true) | ("pa_acme", false) => {
                        [&a1, &a2].map(String::clone).into()
                    }
                    ("pa_beta", false) => [&b1, &b2].map(String::clone).into(),
                    ("pa_beta", true) => BTreeSet::new(),
                    ("sponsor", false) => [&a1, &b1].map(String::clone).into(),
                    ("sponsor", true) => [&a1].map(String::clone).into(),
                    _ => unreachable!(),
                };
                if listed != expected {
                    failures.push(format!(
                        "{path} as {} listed {listed:?}, want {expected:?}",
                        role
                    ));
                }
                if res.body["total"] != expected.len() {
                    failures.push(format!("{path} as {} total {}", role, res.body["total"]));
                }
            }
            if path == "/imports" {
                let listed = ids(&res.body, "imports", "id");
                let foreign = match role {
                    "pa_acme" => Some(&imp_b),
                    "pa_beta" => Some(&imp_a),
                    _ => None,
                };
                let own = match role {
                    "pa_beta" => &imp_b,
                    _ => &imp_a,
                };
                if foreign.is_some_and(|f| listed.contains(f)) || !listed.contains(own) {
                    failures.push(format!("/imports as {} listed {listed:?}", role));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The audit log names the role and the token id, nothing personal.
    let a1_detail = call(&app, Some(admin), Method::GET, &format!("/guests/{a1}")).await;
    let actors: Vec<&str> = a1_detail.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["actor"].as_str())
        .collect();
    assert!(
        actors.iter().any(|a| a.starts_with("sponsor:")),
        "{actors:?}"
    );
    assert!(
        actors.iter().any(|a| a.starts_with("partner-admin:")),
        "{actors:?}"
    );
    assert!(actors.iter().all(|a| !a.contains('@')), "{actors:?}");

    // Refusals wrote nothing: b2's only approval is its partner-admin's, after the sponsor's
    // 404.
    let b2_detail = call(&app, Some(admin), Method::GET, &format!("/guests/{b2}")).await;
    let approvals: Vec<String> = b2_detail.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["detail"]["event"] == "Approve")
        .map(|h| {
            h["actor"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect::<Vec<_>>();
    assert_eq!(
        approvals,
        ["partner-admin"],
        "{}",
        b2_detail.body["history"]
    );
}

both_backends!(admin_token_roles_from_the_command_line_and_bad_options_write_nothing);

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
        .env("GUESTBRIDGE_SECRET_KEY", crate::helpers::TEST_SECRET_KEY)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge")
}

async fn admin_token_roles_from_the_command_line_and_bad_options_write_nothing(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    app.partner("acme").await;
    let count = || async {
        let mut conn = app.deps.db.pool().acquire().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_tokens")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let m: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admin_logins")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        (n, m)
    };
    for (args, needle) in [
        (
            &["admin", "token", "--role", "root"][..],
            "role must be one of",
        ),
        (
            &["admin", "token", "--role", "partner-admin"][..],
            "needs --partner",
        ),
        (
            &[
                "admin",
                "token",
                "--role",
                "partner-admin",
                "--partner",
                "nobody",
            ][..],
            "no partner nobody",
        ),
        (
            &["admin", "token", "--role", "sponsor"][..],
            "needs --sponsor",
        ),
        (
            &[
                "admin",
                "token",
                "--role",
                "sponsor",
                "--sponsor",
                "not-an-address",
            ][..],
            "e-mail address",
        ),
        (
            &["admin", "token", "--role", "auditor", "--partner", "acme"][..],
            "only for the partner-admin",
        ),
        (
            &["admin", "create-login", "x", "--role", "sponsor"][..],
            "needs --sponsor",
        ),
        (
            &["admin", "create-login", "", "--role", "admin"][..],
            "login name",
        ),
    ] {
        let out = cli(&app, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    assert_eq!(count().await, (0, 0), "refused options wrote nothing");

    let out = cli(
        &app,
        &[
            "admin",
            "token",
            "--name",
            "acme ops",
            "--role",
            "partner-admin",
            "--partner",
            "acme",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let token = stdout.lines().last().unwrap().to_string();
    crate::log_scan::register_secret(&token);
    let mine = call(&app, Some(&token), Method::GET, "/partners/acme/tokens").await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(
        call(&app, Some(&token), Method::GET, "/admin-tokens")
            .await
            .status,
        403
    );
    let admin = issue(&app, AdminRole::Admin, None, None).await;
    let listed = call(&app, Some(&admin), Method::GET, "/admin-tokens").await;
    let roles: Vec<&str> = listed.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["partner-admin", "admin"]);
    let twice = cli(&app, &["admin", "create-login", "Same"]);
    assert!(twice.status.success());
    let again = cli(&app, &["admin", "create-login", "same"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    for out in [&twice] {
        if let Some(link) = String::from_utf8_lossy(&out.stdout).lines().last() {
            crate::log_scan::register_secret(link.rsplit('/').next().unwrap());
        }
    }
}
