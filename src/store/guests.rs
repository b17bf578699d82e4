//! Guests and their grants.

use sqlx::{AnyConnection, Row};

use super::sql::{Arg, Sql};
use super::work::{Table, Work};
use super::DbError;

/// A stored guest.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestRow {
    pub id: String,
    pub partner_id: String,
    pub user_id: String,
    pub user_name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// `GuestState` in its stored form.
    pub state: String,
    pub approved: bool,
    pub mfa_required: bool,
    pub sponsor: Option<String>,
    pub template: Option<String>,
    pub language: Option<String>,
    pub access_until: Option<i64>,
    pub invited_at: Option<i64>,
    pub redeemed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The rule set (fingerprint) the guest's last rule decision was made with.
    pub rules_fingerprint: Option<String>,
}

/// One grant: an app role given by one rule, with its validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub guest_id: String,
    pub app_id: String,
    pub role: String,
    pub rule_id: String,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub ends_by: Option<String>,
}

const COLUMNS: &str =
    "g.id, g.partner_id, g.user_id, g.user_name, g.email, g.display_name, g.state, g.approved,
    g.mfa_required, g.sponsor, g.template, g.language, g.access_until, g.invited_at, g.redeemed_at,
    g.created_at, g.updated_at, g.rules_fingerprint";

fn from_row(r: &sqlx::any::AnyRow) -> Result<GuestRow, DbError> {
    Ok(GuestRow {
        id: r.try_get("id")?,
        partner_id: r.try_get("partner_id")?,
        user_id: r.try_get("user_id")?,
        user_name: r.try_get("user_name")?,
        email: r.try_get("email")?,
        display_name: r.try_get("display_name")?,
        state: r.try_get("state")?,
        approved: r.try_get::<i64, _>("approved")? != 0,
        mfa_required: r.try_get::<i64, _>("mfa_required")? != 0,
        sponsor: r.try_get("sponsor")?,
        template: r.try_get("template")?,
        language: r.try_get("language")?,
        access_until: r.try_get("access_until")?,
        invited_at: r.try_get("invited_at")?,
        redeemed_at: r.try_get("redeemed_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        rules_fingerprint: r.try_get("rules_fingerprint")?,
    })
}

pub async fn find_by_user(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<GuestRow>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM guests g WHERE g.user_id = $1"
    ))
    .bind(user_id)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<GuestRow>, DbError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM guests g WHERE g.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// A guest read to be changed in this transaction (see `store::for_update`): two instances
/// deciding about one guest take turns, and the second decides on what the first wrote.
pub async fn get_locked(conn: &mut AnyConnection, id: &str) -> Result<Option<GuestRow>, DbError> {
    locked_where(conn, "g.id", id).await
}

/// The guest of a user, read to be changed in this transaction (see [`get_locked`]).
pub async fn find_by_user_locked(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<GuestRow>, DbError> {
    locked_where(conn, "g.user_id", user_id).await
}

async fn locked_where(
    conn: &mut AnyConnection,
    column: &'static str,
    value: &str,
) -> Result<Option<GuestRow>, DbError> {
    let lock = super::for_update(conn);
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM guests g WHERE {column} = $1{lock}"
    ))
    .bind(value)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// Queue a new guest in `work`.
pub fn queue_insert(work: &mut Work, g: &GuestRow) {
    work.queue(Table::Guests, guest_args(g));
}

/// Queue an existing guest's changed record in `work` (as [`update`] writes it).
pub fn queue_update(work: &mut Work, g: &GuestRow) {
    work.queue(Table::GuestChanges, guest_args(g));
}

fn guest_args(g: &GuestRow) -> Vec<Arg> {
    vec![
        Arg::text(g.id.as_str()),
        Arg::text(g.partner_id.as_str()),
        Arg::text(g.user_id.as_str()),
        Arg::text(g.user_name.as_str()),
        Arg::opt_text(g.email.as_deref()),
        Arg::opt_text(g.display_name.as_deref()),
        Arg::text(g.state.as_str()),
        Arg::Int(i64::from(g.approved)),
        Arg::Int(i64::from(g.mfa_required)),
        Arg::opt_text(g.sponsor.as_deref()),
        Arg::opt_text(g.template.as_deref()),
        Arg::opt_text(g.language.as_deref()),
        Arg::opt_int(g.access_until),
        Arg::opt_int(g.invited_at),
        Arg::opt_int(g.redeemed_at),
        Arg::Int(g.created_at),
        Arg::Int(g.updated_at),
        Arg::opt_text(g.rules_fingerprint.as_deref()),
    ]
}

/// Queue a new grant in `work`.
pub fn queue_grant(work: &mut Work, g: &GrantRow) {
    work.queue(
        Table::Grants,
        vec![
            Arg::text(g.guest_id.as_str()),
            Arg::text(g.app_id.as_str()),
            Arg::text(g.role.as_str()),
            Arg::text(g.rule_id.as_str()),
            Arg::Int(g.valid_from),
            Arg::opt_int(g.valid_until),
            Arg::opt_text(g.ends_by.as_deref()),
        ],
    );
}

pub async fn update(conn: &mut AnyConnection, g: &GuestRow) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE guests SET user_name = $1, email = $2, display_name = $3, state = $4, approved = $5,
            mfa_required = $6, sponsor = $7, template = $8, language = $9, access_until = $10,
            invited_at = $11, redeemed_at = $12, updated_at = $13, rules_fingerprint = $15
         WHERE id = $14",
    )
    .bind(&g.user_name)
    .bind(&g.email)
    .bind(&g.display_name)
    .bind(&g.state)
    .bind(i64::from(g.approved))
    .bind(i64::from(g.mfa_required))
    .bind(&g.sponsor)
    .bind(&g.template)
    .bind(&g.language)
    .bind(g.access_until)
    .bind(g.invited_at)
    .bind(g.redeemed_at)
    .bind(g.updated_at)
    .bind(&g.id)
    .bind(&g.rules_fingerprint)
    .execute(conn)
    .await?;
    Ok(())
}

fn grant_from_row(r: &sqlx::any::AnyRow) -> Result<GrantRow, DbError> {
    Ok(GrantRow {
        guest_id: r.try_get("guest_id")?,
        app_id: r.try_get("app_id")?,
        role: r.try_get("role")?,
        rule_id: r.try_get("rule_id")?,
        valid_from: r.try_get("valid_from")?,
        valid_until: r.try_get("valid_until")?,
        ends_by: r.try_get("ends_by")?,
    })
}

pub async fn grants(conn: &mut AnyConnection, guest_id: &str) -> Result<Vec<GrantRow>, DbError> {
    sqlx::query(
        "SELECT guest_id, app_id, role, rule_id, valid_from, valid_until, ends_by FROM guest_grants
         WHERE guest_id = $1 ORDER BY app_id, role, rule_id",
    )
    .bind(guest_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(grant_from_row)
    .collect()
}

pub async fn update_grant_window(conn: &mut AnyConnection, g: &GrantRow) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE guest_grants SET valid_until = $1, ends_by = $2,
            end_seen_at = CASE WHEN valid_until = $1 THEN end_seen_at ELSE NULL END
         WHERE guest_id = $3 AND app_id = $4 AND role = $5 AND rule_id = $6",
    )
    .bind(g.valid_until)
    .bind(&g.ends_by)
    .bind(&g.guest_id)
    .bind(&g.app_id)
    .bind(&g.role)
    .bind(&g.rule_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_grant(conn: &mut AnyConnection, g: &GrantRow) -> Result<(), DbError> {
    sqlx::query("DELETE FROM guest_grants WHERE guest_id = $1 AND app_id = $2 AND role = $3 AND rule_id = $4")
        .bind(&g.guest_id)
        .bind(&g.app_id)
        .bind(&g.role)
        .bind(&g.rule_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// What an admin lists guests by.
#[derive(Debug, Clone, Default)]
pub struct GuestFilter {
    pub partner_id: Option<String>,
    /// A stored state, or `suspended` for every suspension reason.
    pub state: Option<String>,
    pub app: Option<String>,
    /// Only guests with this sponsor (compared lower-cased).
    pub sponsor: Option<String>,
}

/// One page of guests in creation order after `after`, and the total matching.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &GuestFilter,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<(i64, Vec<GuestRow>), DbError> {
    let mut cond = Sql::new("1 = 1");
    if let Some(p) = &filter.partner_id {
        cond.push(" AND g.partner_id = ").bind(Arg::Text(p.clone()));
    }
    match filter.state.as_deref() {
        Some("suspended") => {
            cond.push(" AND g.state LIKE 'suspended:%'");
        }
        Some(s) => {
            cond.push(" AND g.state = ").bind(Arg::Text(s.to_string()));
        }
        None => {}
    }
    if let Some(sponsor) = &filter.sponsor {
        cond.push(" AND LOWER(g.sponsor) = ")
            .bind(Arg::Text(sponsor.to_lowercase()));
    }
    if let Some(app) = &filter.app {
        cond.push(" AND g.id IN (SELECT gg.guest_id FROM guest_grants gg WHERE gg.app_id = ")
            .bind(Arg::Text(app.clone()))
            .push(")");
    }
    let mut count = Sql::new("SELECT COUNT(*) FROM guests g WHERE ");
    count.append(cond.clone());
    let total: i64 = count.query().fetch_one(&mut *conn).await?.try_get(0)?;
    let mut page = Sql::new(format!("SELECT {COLUMNS} FROM guests g WHERE "));
    page.append(cond);
    if let Some((t, id)) = after {
        page.push(" AND (g.created_at > ")
            .bind(Arg::Int(t))
            .push(" OR (g.created_at = ")
            .bind(Arg::Int(t))
            .push(" AND g.id > ")
            .bind(Arg::Text(id))
            .push("))");
    }
    page.push(" ORDER BY g.created_at, g.id LIMIT ")
        .bind(Arg::Int(limit));
    let rows = page.query().fetch_all(&mut *conn).await?;
    Ok((total, rows.iter().map(from_row).collect::<Result<_, _>>()?))
}

/// Guests of these users (batched look-up for re-evaluation).
pub async fn by_users(
    conn: &mut AnyConnection,
    user_ids: &[&str],
) -> Result<Vec<GuestRow>, DbError> {
    let mut out = Vec::new();
    for chunk in user_ids.chunks(500) {
        let mut sql = Sql::new(format!(
            "SELECT {COLUMNS} FROM guests g WHERE g.user_id IN ("
        ));
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text((*id).to_string()));
        }
        sql.push(")");
        for row in sql.query().fetch_all(&mut *conn).await? {
            out.push(from_row(&row)?);
        }
    }
    Ok(out)
}

/// Grants of these guests (batched look-up for re-evaluation).
pub async fn grants_of(
    conn: &mut AnyConnection,
    guest_ids: &[&str],
) -> Result<Vec<GrantRow>, DbError> {
    let mut out = Vec::new();
    for chunk in guest_ids.chunks(500) {
        let mut sql = Sql::new(
            "SELECT guest_id, app_id, role, rule_id, valid_from, valid_until, ends_by FROM guest_grants WHERE guest_id IN (",
        );
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text((*id).to_string()));
        }
        sql.push(")");
        for row in sql.query().fetch_all(&mut *conn).await? {
            out.push(grant_from_row(&row)?);
        }
    }
    Ok(out)
}

/// Guests with this (lower-cased) email address, any partner.
pub async fn by_email(
    conn: &mut AnyConnection,
    email_lower: &str,
) -> Result<Vec<GuestRow>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM guests g WHERE g.email = $1 ORDER BY g.created_at"
    ))
    .bind(email_lower)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Lock these users of a partner and their guests for a decision in this transaction (see
/// `store::for_update`), users first and each in id order: the order a SCIM write (user row,
/// then guest) and a reload (one person at a time) take them, so a batch never deadlocks
/// against them or against another batch. Nothing on SQLite, whose writer holds the database.
pub async fn lock_people(
    conn: &mut AnyConnection,
    partner_id: &str,
    user_ids: &[&str],
) -> Result<(), DbError> {
    let lock = super::for_update(conn);
    if lock.is_empty() {
        return Ok(());
    }
    let mut sorted = user_ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for chunk in sorted.chunks(500) {
        for (table, column, partner_column) in [
            ("scim_users", "id", "partner_id"),
            ("guests", "user_id", "partner_id"),
        ] {
            let mut sql = Sql::new(format!(
                "SELECT {column} FROM {table} WHERE {partner_column} = "
            ));
            sql.bind(Arg::Text(partner_id.to_string()));
            sql.push(&format!(" AND {column} IN ("));
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(Arg::Text((*id).to_string()));
            }
            sql.push(&format!(") ORDER BY {column}{lock}"));
            sql.query().fetch_all(&mut *conn).await?;
        }
    }
    Ok(())
}
