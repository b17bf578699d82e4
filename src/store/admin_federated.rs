//! Console logins of people who sign in through the organisation's identity provider: one
//! row in `admin_logins` per issuer and subject (`oidc_issuer`, `oidc_subject`, unique),
//! without a password, whose role and scope are set again from their groups at each
//! sign-in. Their `name_lower` is a digest of issuer and subject, so a display name taken
//! from the provider can never collide with, or shadow, a local login's name.

use sqlx::{AnyConnection, Row};

use super::admin_logins::LoginRow;
use super::tokens::principal;
use super::DbError;
use crate::domain::{AdminRole, PrincipalKind};

/// A federated login's role, scope and shown name, as the groups mapped them.
pub struct FederatedLogin<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub name: &'a str,
    pub role: AdminRole,
    pub partner_id: Option<&'a str>,
    pub sponsor_email: Option<&'a str>,
}

/// The unique `name_lower` of a federated login.
pub fn name_key(issuer: &str, subject: &str) -> String {
    format!(
        "oidc:{}",
        crate::auth::secrets::hash_token(&format!("{issuer}\n{subject}"))
    )
}

pub async fn by_subject(
    conn: &mut AnyConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<LoginRow>, DbError> {
    let Some(row) = sqlx::query(
        "SELECT id, name, role, partner_id, sponsor_email, password_hash, disabled_at
         FROM admin_logins WHERE oidc_issuer = $1 AND oidc_subject = $2",
    )
    .bind(issuer)
    .bind(subject)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let id: String = row.try_get("id")?;
    Ok(Some(LoginRow {
        principal: principal(&row, PrincipalKind::Login, &id)?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        disabled_at: row.try_get("disabled_at")?,
        id,
    }))
}

/// The single sign-on logins with this subject, whatever their issuer (an operator knows the
/// subject from the audit log; two issuers' logins may share one).
pub async fn ids_by_subject(
    conn: &mut AnyConnection,
    subject: &str,
) -> Result<Vec<String>, DbError> {
    sqlx::query("SELECT id FROM admin_logins WHERE oidc_subject = $1")
        .bind(subject)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}

pub async fn insert(
    conn: &mut AnyConnection,
    id: &str,
    l: &FederatedLogin<'_>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO admin_logins (id, name, name_lower, role, partner_id, sponsor_email,
                                   oidc_issuer, oidc_subject, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(id)
    .bind(l.name)
    .bind(name_key(l.issuer, l.subject))
    .bind(l.role.as_str())
    .bind(l.partner_id)
    .bind(l.sponsor_email)
    .bind(l.issuer)
    .bind(l.subject)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Set the role, scope and name from this sign-in.
pub async fn update(
    conn: &mut AnyConnection,
    id: &str,
    l: &FederatedLogin<'_>,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE admin_logins SET name = $1, role = $2, partner_id = $3, sponsor_email = $4,
                                 updated_at = $5
         WHERE id = $6",
    )
    .bind(l.name)
    .bind(l.role.as_str())
    .bind(l.partner_id)
    .bind(l.sponsor_email)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
