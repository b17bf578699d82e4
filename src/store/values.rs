//! Indexed leaf values of SCIM resources (`scim_values`), written with the resource in the
//! same transaction and read only by compiled filters and sorting.

use sqlx::AnyConnection;

use super::sql::{Arg, Sql};
use super::work::{Table, Work};
use super::DbError;
use crate::scim_core::resource::LeafValue;

/// Rows per multi-row INSERT: small enough that binding stays cheap (see `work::MAX_PARAMS`).
const CHUNK: usize = 64;

pub async fn insert(
    conn: &mut AnyConnection,
    resource_id: &str,
    partner_id: &str,
    leaves: &[LeafValue],
) -> Result<(), DbError> {
    for chunk in leaves.chunks(CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO scim_values (resource_id, partner_id, path, elem, value, value_ci, num) VALUES ",
        );
        for (i, leaf) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(Arg::Text(resource_id.to_string()))
                .push(", ")
                .bind(Arg::Text(partner_id.to_string()))
                .push(", ")
                .bind(Arg::Text(leaf.path.clone()))
                .push(", ")
                .bind(Arg::Int(leaf.elem))
                .push(", ")
                .bind(Arg::Text(leaf.value.clone()))
                .push(", ")
                .bind(Arg::Text(leaf.value_ci.clone()))
                .push(", ");
            match leaf.num {
                Some(n) => sql.bind(Arg::Real(n)),
                None => sql.push("NULL"),
            };
            sql.push(")");
        }
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, resource_id: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM scim_values WHERE resource_id = $1")
        .bind(resource_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replace all values of a resource.
pub async fn replace(
    conn: &mut AnyConnection,
    resource_id: &str,
    partner_id: &str,
    leaves: &[LeafValue],
) -> Result<(), DbError> {
    delete(&mut *conn, resource_id).await?;
    insert(conn, resource_id, partner_id, leaves).await
}

/// Queue a resource's values in `work`.
pub fn queue(work: &mut Work, resource_id: &str, partner_id: &str, leaves: &[LeafValue]) {
    for leaf in leaves {
        work.queue(
            Table::Values,
            vec![
                Arg::text(resource_id),
                Arg::text(partner_id),
                Arg::text(leaf.path.as_str()),
                Arg::Int(leaf.elem),
                Arg::text(leaf.value.as_str()),
                Arg::text(leaf.value_ci.as_str()),
                Arg::opt_real(leaf.num),
            ],
        );
    }
}
