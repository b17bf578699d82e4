//! Rows whose use has passed: expired portal and console sessions, e-mail codes, sign-in
//! links and console setup links,
//! finished rate-limit windows, old job runs, records of notices whose occasion is past,
//! and settled outbox rows past their retention (delivered or dead sync events, sent or
//! failed mail), which name the people they were about. Each delete takes one batch by an indexed
//! column, so a run costs what has expired, not the table.

use sqlx::AnyConnection;

use super::DbError;

/// What [`delete_batch`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Portal sessions past their end.
    Sessions,
    /// Console (admin) sessions past their absolute end; a signed-out session's row ends
    /// there too, since its end is what bounds how long it is kept for the record.
    AdminSessions,
    /// Console setup links (`admin create-login`) past their end, used or not.
    AdminLinks,
    /// MFA e-mail codes past their end.
    EmailCodes,
    /// OpenID Connect authorization codes past their end, exchanged or not.
    OAuthCodes,
    /// OpenID Connect refresh tokens past their end (a reuse is refused as expired then).
    RefreshTokens,
    /// Sign-in links past their end.
    SigninLinks,
    /// Rate-limit counters whose window began before the cut-off.
    RateLimits,
    /// Job runs started before the cut-off, except each job's latest (what `jobs list` shows).
    JobRuns,
    /// Records of notices sent (expiry warnings) before the cut-off.
    Notices,
    /// Sync events delivered before the cut-off.
    SyncDelivered,
    /// Sync events that became dead letters before the cut-off (no longer replayable).
    SyncDead,
    /// Mail sent before the cut-off.
    MailSent,
    /// Mail given up on before the cut-off.
    MailFailed,
}

impl Expired {
    pub const ALL: [Expired; 14] = [
        Expired::Sessions,
        Expired::AdminSessions,
        Expired::AdminLinks,
        Expired::EmailCodes,
        Expired::OAuthCodes,
        Expired::RefreshTokens,
        Expired::SigninLinks,
        Expired::RateLimits,
        Expired::JobRuns,
        Expired::Notices,
        Expired::SyncDelivered,
        Expired::SyncDead,
        Expired::MailSent,
        Expired::MailFailed,
    ];

    /// The count's name in a job report.
    pub fn name(self) -> &'static str {
        match self {
            Expired::Sessions => "sessions_deleted",
            Expired::AdminSessions => "admin_sessions_deleted",
            Expired::AdminLinks => "admin_links_deleted",
            Expired::EmailCodes => "email_codes_deleted",
            Expired::OAuthCodes => "oauth_codes_deleted",
            Expired::RefreshTokens => "refresh_tokens_deleted",
            Expired::SigninLinks => "signin_links_deleted",
            Expired::RateLimits => "rate_limits_deleted",
            Expired::JobRuns => "job_runs_deleted",
            Expired::Notices => "notices_deleted",
            Expired::SyncDelivered => "sync_delivered_deleted",
            Expired::SyncDead => "sync_dead_deleted",
            Expired::MailSent => "mail_sent_deleted",
            Expired::MailFailed => "mail_failed_deleted",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Expired::Sessions => {
                "DELETE FROM guest_sessions WHERE id_hash IN
                   (SELECT id_hash FROM guest_sessions WHERE expires_at < $1 LIMIT $2)"
            }
            Expired::AdminSessions => {
                "DELETE FROM admin_sessions WHERE id IN
                   (SELECT id FROM admin_sessions WHERE expires_at < $1 LIMIT $2)"
            }
            Expired::AdminLinks => {
                "DELETE FROM admin_login_links WHERE id IN
                   (SELECT id FROM admin_login_links WHERE expires_at < $1 LIMIT $2)"
            }
            Expired::EmailCodes => {
                "DELETE FROM email_codes WHERE id IN
                   (SELECT id FROM email_codes WHERE expires_at < $1 LIMIT $2)"
            }
            Expired::OAuthCodes => {
                "DELETE FROM oauth_codes WHERE code_hash IN
                   (SELECT code_hash FROM oauth_codes WHERE expires_at < $1 LIMIT $2)"
            }
            Expired::RefreshTokens => {
                "DELETE FROM oauth_refresh_tokens WHERE token_hash IN
                   (SELECT token_hash FROM oauth_refresh_tokens WHERE expires_at < $1 LIMIT $2)"
            }
            Expired::SigninLinks => {
                "DELETE FROM signin_links WHERE token_hash IN
                   (SELECT token_hash FROM signin_links WHERE expires_at < $1 LIMIT $2)"
            }
            Expired::RateLimits => {
                "DELETE FROM rate_limits WHERE key IN
                   (SELECT key FROM rate_limits WHERE window_start < $1 LIMIT $2)"
            }
            Expired::JobRuns => {
                "DELETE FROM job_runs WHERE id IN
                   (SELECT r.id FROM job_runs r WHERE r.started_at < $1
                      AND r.started_at < (SELECT MAX(l.started_at) FROM job_runs l WHERE l.job = r.job)
                    LIMIT $2)"
            }
            Expired::Notices => {
                "DELETE FROM notices WHERE key IN
                   (SELECT key FROM notices WHERE at < $1 LIMIT $2)"
            }
            Expired::SyncDelivered => {
                "DELETE FROM sync_outbox WHERE seq IN
                   (SELECT seq FROM sync_outbox WHERE delivered_at < $1 LIMIT $2)"
            }
            Expired::SyncDead => {
                "DELETE FROM sync_outbox WHERE seq IN
                   (SELECT seq FROM sync_outbox WHERE dead_at < $1 LIMIT $2)"
            }
            Expired::MailSent => {
                "DELETE FROM mail_outbox WHERE id IN
                   (SELECT id FROM mail_outbox WHERE sent_at < $1 LIMIT $2)"
            }
            Expired::MailFailed => {
                "DELETE FROM mail_outbox WHERE id IN
                   (SELECT id FROM mail_outbox WHERE failed_at < $1 LIMIT $2)"
            }
        }
    }
}

/// Delete up to `limit` rows of `what` that ended (or began) before `before`; how many went.
pub async fn delete_batch(
    conn: &mut AnyConnection,
    what: Expired,
    before: i64,
    limit: i64,
) -> Result<u64, DbError> {
    Ok(sqlx::query(what.sql())
        .bind(before)
        .bind(limit)
        .execute(conn)
        .await?
        .rows_affected())
}
