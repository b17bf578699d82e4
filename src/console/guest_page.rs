//! `GET /admin/guests/{id}`: one guest: person, partner, sponsor, state, grants with their
//! rule and end, invitations, MFA, why the rules decide what they do, the timeline of the
//! guest and its SCIM user from the audit log (names resolved, or ERASED), and the actions.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::page_frame::{html, iso, not_found, state_label, when, ConsoleCaller, PageError};
use crate::admin::AdminError;
use crate::app_state::AppState;
use crate::services::{guests, rules, ServiceError};
use crate::store::audit;

/// Most timeline entries read for the SCIM user (the guest's own are bounded by the
/// guest detail).
const USER_HISTORY_LIMIT: i64 = 500;

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let deps = &state.deps;
    let d = match guests::get(deps, &id).await {
        Ok(d) => d,
        Err(ServiceError::NotFound) => {
            return not_found(&caller, "There is no guest with this id.")
        }
        Err(e) => return Err(e.into()),
    };
    if !caller.can_see_guest(&d.guest) {
        return not_found(&caller, "There is no guest with this id.");
    }
    let now = deps.now_ms();
    let mut timeline = d.history.clone();
    {
        let mut conn = deps
            .db
            .pool()
            .acquire()
            .await
            .map_err(|e| AdminError::from(ServiceError::from(e)))?;
        let user = audit::for_target(&mut conn, "user", &d.guest.user_id, USER_HISTORY_LIMIT)
            .await
            .map_err(|e| AdminError::from(ServiceError::from(e)))?;
        timeline.extend(user);
    }
    timeline.sort_by_key(|r| std::cmp::Reverse(r.id));
    timeline.dedup_by_key(|r| r.id);

    // A guest whose SCIM user was deleted has nothing left to evaluate.
    let explanation = match rules::explain_user(deps, &d.partner, &d.guest.user_id).await {
        Ok(e) => serde_json::to_value(e).unwrap_or(Value::Null),
        Err(ServiceError::NotFound) => Value::Null,
        Err(e) => return Err(e.into()),
    };

    let g = &d.guest;
    let stored = g.state.as_str();
    let ctx = json!({
        "guest": {
            "id": g.id, "user_id": g.user_id, "user_name": g.user_name,
            "display_name": g.display_name, "email": g.email, "sponsor": g.sponsor,
            "state": stored, "state_label": state_label(stored), "approved": g.approved,
            "mfa_required": g.mfa_required, "language": g.language,
            "access_until": when(g.access_until), "invited_at": when(g.invited_at),
            "redeemed_at": when(g.redeemed_at), "created_at": when(Some(g.created_at)),
        },
        "partner": {"slug": d.partner.slug.as_str(), "name": d.partner.name},
        "mfa_enrolled": d.mfa_enrolled,
        "grants": d.grants.iter().map(|gr| json!({
            "app": gr.app_id, "role": gr.role, "rule": gr.rule_id,
            "from": when(Some(gr.valid_from)), "until": when(gr.valid_until),
            "until_iso": iso(gr.valid_until), "ends_by": gr.ends_by,
        })).collect::<Vec<_>>(),
        "invitations": d.invitations.iter().map(|i| {
            let status = if i.used_at.is_some() { "redeemed" }
                else if i.revoked_at.is_some() { "revoked" }
                else if i.expires_at <= now { "expired" } else { "open" };
            json!({"status": status, "sent": when(Some(i.created_at)),
                   "expires": when(Some(i.expires_at)), "used": when(i.used_at),
                   "reminders": i.reminders_sent})
        }).collect::<Vec<_>>(),
        "consent": d.consent.as_ref().map(|(at, version, accepted)|
            json!({"at": when(Some(*at)), "version": version, "accepted": accepted})),
        "explanation": explanation,
        "timeline": timeline.iter().map(|r| json!({
            "at": when(Some(r.at)), "at_iso": iso(Some(r.at)), "actor": r.actor,
            "action": r.action, "target": r.target_type,
            "detail": summary(&r.detail),
        })).collect::<Vec<_>>(),
        "actions": {
            "approve": stored == "pending_approval",
            "suspend": !stored.starts_with("suspended") && stored != "removed",
            "resume": stored.starts_with("suspended"),
            "reinvite": matches!(stored, "invited" | "active") || stored.starts_with("suspended:lapsed"),
            "remove": stored != "removed",
        },
    });
    html(&caller, StatusCode::OK, "guest.html", ctx)
}

/// An audit detail as one line: `key: value` pairs, nested values as compact JSON.
fn summary(detail: &Value) -> String {
    match detail {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
