//! Roster imports running in the background on this instance. Once one ends its record is in
//! the database (`imports`) and its entry goes, so an instance that runs imports for months
//! keeps only the running ones (and those whose failure could not be recorded).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Imports running on this instance, by id.
#[derive(Default)]
pub struct RunningImports {
    inner: Mutex<HashMap<String, Running>>,
}

struct Running {
    rows: Arc<AtomicU64>,
    /// Set only when the failure could not be recorded either.
    failure: Option<String>,
}

/// How far an import held in memory has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Rows read so far.
    Running { rows: u64 },
    /// Failed, and the failure could not be recorded: the reason.
    Failed(String),
}

impl RunningImports {
    /// Register import `id` as running; the counter is what it updates with rows read.
    pub fn start(&self, id: &str) -> Arc<AtomicU64> {
        let rows = Arc::new(AtomicU64::new(0));
        self.with(|m| {
            m.insert(
                id.to_string(),
                Running {
                    rows: rows.clone(),
                    failure: None,
                },
            )
        });
        rows
    }

    /// Import `id` ended: its entry goes, unless its failure (`unrecorded`) has no record to
    /// read it from, in which case the entry keeps it.
    pub fn finish(&self, id: &str, unrecorded: Option<String>) {
        self.with(|m| match unrecorded {
            None => {
                m.remove(id);
            }
            Some(reason) => {
                if let Some(r) = m.get_mut(id) {
                    r.failure = Some(reason);
                }
            }
        });
    }

    /// Import `id` as held in memory, if it is.
    pub fn progress(&self, id: &str) -> Option<Progress> {
        self.with(|m| {
            m.get(id).map(|r| match &r.failure {
                Some(reason) => Progress::Failed(reason.clone()),
                None => Progress::Running {
                    rows: r.rows.load(Ordering::Relaxed),
                },
            })
        })
    }

    /// Imports this instance holds in memory (running, or failed without a record).
    pub fn len(&self) -> usize {
        self.with(|m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Running>) -> T) -> T {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_is_held_while_running_and_kept_only_when_its_failure_is_unrecorded() {
        let runs = RunningImports::default();
        let rows = runs.start("a");
        runs.start("b");
        rows.store(7, Ordering::Relaxed);
        assert_eq!(runs.progress("a"), Some(Progress::Running { rows: 7 }));
        assert_eq!(runs.len(), 2);
        runs.finish("a", None);
        assert_eq!(runs.progress("a"), None);
        runs.finish("b", Some("disk full".into()));
        assert_eq!(
            runs.progress("b"),
            Some(Progress::Failed("disk full".into()))
        );
        assert_eq!(runs.len(), 1);
    }
}
