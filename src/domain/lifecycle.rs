//! The guest lifecycle: every state a guest can be in and every transition between them, in
//! one place. Services ask `transition` what an event does; an event that does not apply in a
//! state is refused rather than silently ignored.
//!
//! ```text
//!                 approve                 redeem
//! PendingApproval ──────► Invited ─────────────► Active
//!        │                   │  decline             │
//!        └───────────────────┴──────────┬───────────┘
//!            deactivate / expire / no grants / decline
//!                                      ▼
//!                                  Suspended ──restore──► (state before suspension)
//!            (declined / lapsed / inactive) ──admin re-invites──► Invited
//!   any state ── partner deletes the person / admin removes ──► Removed (final)
//! ```

use std::fmt;
use std::str::FromStr;

/// Why a guest is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuspendReason {
    /// The partner deactivated the person (SCIM `active=false`, or missing from a full import).
    Deactivated,
    /// Every grant has ended.
    Expired,
    /// The guest declined the invitation.
    Declined,
    /// The rules no longer grant anything.
    NoGrants,
    /// The invitation lapsed without being redeemed.
    Lapsed,
    /// The guest did not sign in for too long.
    Inactive,
    /// An administrator suspended the guest; only an administrator resumes them.
    Admin,
}

/// Where a guest stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestState {
    /// Waiting for an admin to approve the invitation.
    PendingApproval,
    /// Invited, not yet redeemed.
    Invited,
    /// Redeemed the invitation; has access.
    Active,
    Suspended(SuspendReason),
    /// Final: the person is gone.
    Removed,
}

/// Something that happens to a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An admin approves a pending guest.
    Approve,
    /// The guest redeems the invitation.
    Redeem,
    /// The guest declines the invitation.
    Decline,
    /// The partner deactivated the person.
    Deactivate,
    /// The rules no longer grant anything.
    GrantsGone,
    /// All grants have passed their end.
    Expire,
    /// The invitation lapsed.
    Lapse,
    /// No sign-in for too long.
    Inactivity,
    /// The reason for a suspension went away (reactivated, granted again). `redeemed` and
    /// `approved` say where the guest had got to before.
    Restore { redeemed: bool, approved: bool },
    /// An admin invites again a guest who declined, let the invitation lapse or went
    /// inactive (the reasons that are the guest's own, which no partner or rule change undoes).
    Reinvite,
    /// The partner deleted the person, or an admin removed the guest.
    Remove,
    /// An administrator suspends the guest: no rule, partner or job change undoes it.
    AdminSuspend,
    /// An administrator resumes a guest they suspended: back to where the guest had got to,
    /// from where the rules decide again.
    AdminResume { redeemed: bool, approved: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a guest in state {from} cannot {event:?}")]
pub struct InvalidTransition {
    pub from: GuestState,
    pub event: Event,
}

/// The state after `event`, or why it cannot happen. Re-applying an event that already holds
/// (deactivating a deactivated guest) returns the same state, so callers can be idempotent.
pub fn transition(from: GuestState, event: Event) -> Result<GuestState, InvalidTransition> {
    use GuestState::*;
    use SuspendReason as R;
    let invalid = Err(InvalidTransition { from, event });
    match (from, event) {
        (Removed, Event::Remove) => Ok(Removed),
        (Removed, _) => invalid,
        (_, Event::Remove) => Ok(Removed),

        (PendingApproval, Event::Approve) => Ok(Invited),
        (Invited, Event::Approve) => Ok(Invited),
        (Invited, Event::Redeem) | (Active, Event::Redeem) => Ok(Active),
        (PendingApproval | Invited, Event::Decline) => Ok(Suspended(R::Declined)),
        (Invited, Event::Lapse) => Ok(Suspended(R::Lapsed)),
        (Active, Event::Inactivity) => Ok(Suspended(R::Inactive)),

        // An administrator's suspension holds whatever else happens, until they resume it.
        (Suspended(R::Admin), Event::AdminSuspend) => Ok(from),
        (_, Event::AdminSuspend) => Ok(Suspended(R::Admin)),
        (Suspended(R::Admin), Event::AdminResume { redeemed, approved }) => Ok(if redeemed {
            Active
        } else if approved {
            Invited
        } else {
            PendingApproval
        }),
        (Suspended(R::Admin), Event::Deactivate | Event::GrantsGone | Event::Expire) => Ok(from),

        // The partner's word wins over every other reason to be suspended.
        (PendingApproval | Invited | Active, Event::Deactivate) => Ok(Suspended(R::Deactivated)),
        (Suspended(_), Event::Deactivate) => Ok(Suspended(R::Deactivated)),

        (PendingApproval | Invited | Active, Event::GrantsGone) => Ok(Suspended(R::NoGrants)),
        (Suspended(R::NoGrants | R::Expired), Event::GrantsGone) => Ok(from),
        (Invited | Active, Event::Expire) => Ok(Suspended(R::Expired)),
        (Suspended(R::NoGrants | R::Expired), Event::Expire) => Ok(Suspended(R::Expired)),

        // Restoring undoes a suspension the partner or the rules caused; a guest who declined,
        // lapsed or went inactive needs a new invitation (issued by an admin), not a restore.
        (
            Suspended(R::Deactivated | R::NoGrants | R::Expired),
            Event::Restore { redeemed, approved },
        ) => Ok(if redeemed {
            Active
        } else if approved {
            Invited
        } else {
            PendingApproval
        }),
        (PendingApproval | Invited | Active, Event::Restore { .. }) => Ok(from),

        (Suspended(R::Declined | R::Lapsed | R::Inactive) | Invited, Event::Reinvite) => {
            Ok(Invited)
        }
        _ => invalid,
    }
}

impl GuestState {
    /// Whether the guest may use their apps.
    pub fn has_access(self) -> bool {
        self == GuestState::Active
    }

    pub fn suspend_reason(self) -> Option<SuspendReason> {
        match self {
            GuestState::Suspended(r) => Some(r),
            _ => None,
        }
    }
}

impl SuspendReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuspendReason::Deactivated => "deactivated",
            SuspendReason::Expired => "expired",
            SuspendReason::Declined => "declined",
            SuspendReason::NoGrants => "no_grants",
            SuspendReason::Lapsed => "lapsed",
            SuspendReason::Inactive => "inactive",
            SuspendReason::Admin => "admin",
        }
    }
}

impl fmt::Display for GuestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestState::PendingApproval => f.write_str("pending_approval"),
            GuestState::Invited => f.write_str("invited"),
            GuestState::Active => f.write_str("active"),
            GuestState::Suspended(r) => write!(f, "suspended:{}", r.as_str()),
            GuestState::Removed => f.write_str("removed"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown guest state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for GuestState {
    type Err = UnknownState;

    /// The stored form, as written by `Display`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending_approval" => GuestState::PendingApproval,
            "invited" => GuestState::Invited,
            "active" => GuestState::Active,
            "removed" => GuestState::Removed,
            other => {
                let reason = match other.strip_prefix("suspended:") {
                    Some("deactivated") => SuspendReason::Deactivated,
                    Some("expired") => SuspendReason::Expired,
                    Some("declined") => SuspendReason::Declined,
                    Some("no_grants") => SuspendReason::NoGrants,
                    Some("lapsed") => SuspendReason::Lapsed,
                    Some("inactive") => SuspendReason::Inactive,
                    Some("admin") => SuspendReason::Admin,
                    _ => return Err(UnknownState(s.to_string())),
                };
                GuestState::Suspended(reason)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GuestState::*;
    use SuspendReason as R;

    const ALL_STATES: [GuestState; 12] = [
        Suspended(R::Admin),
        PendingApproval,
        Invited,
        Active,
        Suspended(R::Deactivated),
        Suspended(R::Expired),
        Suspended(R::Declined),
        Suspended(R::NoGrants),
        Suspended(R::Lapsed),
        Suspended(R::Inactive),
        Removed,
        Removed,
    ];

    #[test]
    fn only_the_guests_own_suspensions_are_undone_by_a_new_invitation() {
        for reason in [R::Declined, R::Lapsed, R::Inactive] {
            assert_eq!(
                transition(Suspended(reason), Event::Reinvite).unwrap(),
                Invited
            );
        }
        assert_eq!(transition(Invited, Event::Reinvite).unwrap(), Invited);
        for from in [
            PendingApproval,
            Active,
            Suspended(R::Deactivated),
            Suspended(R::Expired),
            Suspended(R::NoGrants),
            Removed,
        ] {
            assert!(transition(from, Event::Reinvite).is_err(), "{from}");
        }
    }

    #[test]
    fn only_an_admin_undoes_an_admin_suspension() {
        for s in [PendingApproval, Invited, Active, Suspended(R::Expired)] {
            assert_eq!(
                transition(s, Event::AdminSuspend).unwrap(),
                Suspended(R::Admin)
            );
        }
        let held = Suspended(R::Admin);
        for e in [
            Event::Deactivate,
            Event::GrantsGone,
            Event::Expire,
            Event::Reinvite,
            Event::Restore {
                redeemed: true,
                approved: true,
            },
        ] {
            assert!(!transition(held, e).is_ok_and(|s| s != held), "{e:?}");
        }
        let resumed = Event::AdminResume {
            redeemed: true,
            approved: true,
        };
        assert_eq!(transition(held, resumed).unwrap(), Active);
        assert!(transition(Active, resumed).is_err());
        assert_eq!(transition(held, Event::Remove).unwrap(), Removed);
    }

    #[test]
    fn the_happy_path() {
        let s = transition(PendingApproval, Event::Approve).unwrap();
        assert_eq!(s, Invited);
        assert_eq!(transition(s, Event::Redeem).unwrap(), Active);
    }

    #[test]
    fn partner_deactivation_and_reactivation_return_to_where_the_guest_was() {
        for (before, redeemed, approved) in [
            (Active, true, true),
            (Invited, false, true),
            (PendingApproval, false, false),
        ] {
            let s = transition(before, Event::Deactivate).unwrap();
            assert_eq!(s, Suspended(R::Deactivated));
            assert_eq!(
                transition(s, Event::Restore { redeemed, approved }).unwrap(),
                before
            );
        }
    }

    #[test]
    fn deactivation_overrides_other_suspensions() {
        for r in [R::Expired, R::Declined, R::NoGrants, R::Lapsed, R::Inactive] {
            assert_eq!(
                transition(Suspended(r), Event::Deactivate).unwrap(),
                Suspended(R::Deactivated)
            );
        }
    }

    #[test]
    fn declined_lapsed_and_inactive_guests_are_not_restored_by_the_rules() {
        for r in [R::Declined, R::Lapsed, R::Inactive] {
            assert!(transition(
                Suspended(r),
                Event::Restore {
                    redeemed: true,
                    approved: true
                }
            )
            .is_err());
        }
    }

    #[test]
    fn removed_is_final_and_remove_works_from_everywhere() {
        for s in ALL_STATES {
            assert_eq!(transition(s, Event::Remove).unwrap(), Removed);
        }
        for e in [
            Event::Approve,
            Event::Redeem,
            Event::Deactivate,
            Event::Restore {
                redeemed: true,
                approved: true,
            },
        ] {
            assert!(transition(Removed, e).is_err());
        }
    }

    #[test]
    fn invalid_transitions_are_refused() {
        assert!(transition(PendingApproval, Event::Redeem).is_err());
        assert!(transition(Active, Event::Decline).is_err());
        assert!(transition(Active, Event::Lapse).is_err());
        assert!(transition(Suspended(R::Deactivated), Event::Redeem).is_err());
    }

    #[test]
    fn states_round_trip_through_their_stored_form() {
        for s in ALL_STATES {
            assert_eq!(s.to_string().parse::<GuestState>().unwrap(), s);
        }
        assert!("suspended:bored".parse::<GuestState>().is_err());
    }
}
