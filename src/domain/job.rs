//! The scheduled jobs by name: settings (schedules) and the job runner both speak of them,
//! so the names live here, below both.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobName {
    Reminders,
    Expiry,
    Deprovision,
    Outbox,
    Reconcile,
    Housekeeping,
}

impl JobName {
    /// Every job, in the order `jobs list` shows them.
    pub const ALL: [JobName; 6] = [
        JobName::Reminders,
        JobName::Expiry,
        JobName::Deprovision,
        JobName::Outbox,
        JobName::Reconcile,
        JobName::Housekeeping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::Reminders => "reminders",
            JobName::Expiry => "expiry",
            JobName::Deprovision => "deprovision",
            JobName::Outbox => "outbox",
            JobName::Reconcile => "reconcile",
            JobName::Housekeeping => "housekeeping",
        }
    }

    /// "reminders, expiry, …" for error messages.
    pub fn listed() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job {0:?}; jobs are {list}", list = JobName::listed())]
pub struct UnknownJob(pub String);

impl FromStr for JobName {
    type Err = UnknownJob;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| UnknownJob(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_others_are_refused_with_the_list() {
        for job in JobName::ALL {
            assert_eq!(job.as_str().parse::<JobName>(), Ok(job));
        }
        let err = "expire".parse::<JobName>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown job \"expire\"; jobs are reminders, expiry, deprovision, outbox, reconcile, housekeeping"
        );
    }
}
