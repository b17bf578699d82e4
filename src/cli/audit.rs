//! `guestbridge audit verify`: the audit log's hash chains, checked from this process.

use crate::config::Settings;
use crate::store::Db;

/// Print the summary and succeed, or fail with the first bad row (the binary prints the
/// error on one line and exits non-zero).
pub async fn verify(settings: &Settings) -> anyhow::Result<()> {
    let db = Db::connect(&settings.database).await?;
    db.migrate().await?;
    let report = crate::services::audit::verify(&db).await?;
    if !report.ok {
        anyhow::bail!("{}", report.summary());
    }
    println!("{}", report.summary());
    Ok(())
}
