//! Partners table.

use sqlx::{AnyConnection, Row};

use super::DbError;
use crate::domain::{Partner, PartnerSlug};

fn partner_from_row(row: &sqlx::any::AnyRow) -> Result<Partner, DbError> {
    let slug: String = row.try_get("slug")?;
    Ok(Partner {
        id: row.try_get("id")?,
        slug: PartnerSlug::parse(&slug).map_err(|e| DbError::Decode(Box::new(e)))?,
        name: row.try_get("name")?,
    })
}

pub async fn insert(
    conn: &mut AnyConnection,
    partner: &Partner,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO partners (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&partner.id)
        .bind(partner.slug.as_str())
        .bind(&partner.name)
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn find_by_slug(
    conn: &mut AnyConnection,
    slug: &PartnerSlug,
) -> Result<Option<Partner>, DbError> {
    sqlx::query("SELECT id, slug, name FROM partners WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(conn)
        .await?
        .map(|r| partner_from_row(&r))
        .transpose()
}

pub async fn list(conn: &mut AnyConnection) -> Result<Vec<Partner>, DbError> {
    sqlx::query("SELECT id, slug, name FROM partners ORDER BY slug")
        .fetch_all(conn)
        .await?
        .iter()
        .map(partner_from_row)
        .collect()
}

/// Lock a partner's row until the transaction ends (on PostgreSQL; SQLite's write
/// transaction holds the whole database already), so that decisions counting its people,
/// such as the `max_people` quota, are taken one at a time.
pub async fn lock(conn: &mut AnyConnection, partner_id: &str) -> Result<(), DbError> {
    let sql = format!(
        "SELECT id FROM partners WHERE id = $1{}",
        super::for_update(conn)
    );
    sqlx::query(&sql)
        .bind(partner_id)
        .fetch_optional(conn)
        .await?;
    Ok(())
}
