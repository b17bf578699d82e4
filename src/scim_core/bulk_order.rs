//! The order a Bulk request's operations run in (RFC 7644 §3.7.2): request order, except
//! that an operation referring to a `bulkId` another operation defines waits until that one
//! has run. Dependencies are counted once up front and released as operations finish, so a
//! request costs time linear in its operations and references (plus a heap's log), however
//! the references are ordered: a chain written backwards used to take one pass over every
//! waiting operation, each scanning every operation, per link.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

pub(crate) struct Schedule {
    /// Per operation, how many operations it still waits for.
    unmet: Vec<usize>,
    /// Per operation, the operations waiting for it.
    waiters: Vec<Vec<usize>>,
    /// Operations free to run, smallest index first (request order).
    ready: BinaryHeap<Reverse<usize>>,
    finished: Vec<bool>,
}

impl Schedule {
    /// `defines[i]` is operation i's `bulkId`, `references[i]` the `bulkId`s it mentions.
    /// A reference to an id nobody else defines waits for nothing (and fails when it runs).
    pub(crate) fn new(defines: &[Option<String>], references: &[Vec<String>]) -> Self {
        let n = defines.len();
        let mut definers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, id) in defines.iter().enumerate() {
            if let Some(id) = id {
                definers.entry(id.as_str()).or_default().push(i);
            }
        }
        let mut unmet = vec![0; n];
        let mut waiters = vec![Vec::new(); n];
        for (i, refs) in references.iter().enumerate() {
            let mut seen: Vec<&str> = Vec::new();
            for r in refs {
                if seen.contains(&r.as_str()) {
                    continue;
                }
                seen.push(r);
                for &j in definers.get(r.as_str()).into_iter().flatten() {
                    if j != i {
                        unmet[i] += 1;
                        waiters[j].push(i);
                    }
                }
            }
        }
        let ready = (0..n).filter(|&i| unmet[i] == 0).map(Reverse).collect();
        Schedule {
            unmet,
            waiters,
            ready,
            finished: vec![false; n],
        }
    }

    /// The next operation to run, if any can.
    pub(crate) fn next(&mut self) -> Option<usize> {
        self.ready.pop().map(|Reverse(i)| i)
    }

    /// Operation `i` has run (successfully or not): release those waiting for it.
    pub(crate) fn finish(&mut self, i: usize) {
        self.finished[i] = true;
        for w in std::mem::take(&mut self.waiters[i]) {
            self.unmet[w] -= 1;
            if self.unmet[w] == 0 {
                self.ready.push(Reverse(w));
            }
        }
    }

    /// Operations that never became free: they wait, directly or not, on a cycle.
    pub(crate) fn stuck(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.finished.len()).filter(|&i| !self.finished[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(defines: &[Option<&str>], references: &[&[&str]]) -> (Vec<usize>, Vec<usize>) {
        let defines: Vec<Option<String>> = defines.iter().map(|d| d.map(str::to_string)).collect();
        let references: Vec<Vec<String>> = references
            .iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect();
        let mut schedule = Schedule::new(&defines, &references);
        let mut order = Vec::new();
        while let Some(i) = schedule.next() {
            order.push(i);
            schedule.finish(i);
        }
        (order, schedule.stuck().collect())
    }

    #[test]
    fn request_order_unless_waiting_for_a_later_definition() {
        let (order, stuck) = run(
            &[Some("g"), Some("u1"), Some("u2"), None],
            &[&["u1"], &[], &[], &["u2"]],
        );
        assert_eq!(order, vec![1, 0, 2, 3]);
        assert!(stuck.is_empty());
    }

    #[test]
    fn cycles_and_what_waits_on_them_are_stuck() {
        let (order, stuck) = run(
            &[Some("x"), Some("y"), None, Some("z")],
            &[&["y"], &["x"], &["x"], &["nobody", "z"]],
        );
        assert_eq!(order, vec![3]);
        assert_eq!(stuck, vec![0, 1, 2]);
    }

    #[test]
    fn a_reversed_chain_runs_backwards() {
        let n = 1000;
        let ids: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
        let defines: Vec<Option<&str>> = ids.iter().map(|s| Some(s.as_str())).collect();
        let refs: Vec<Vec<&str>> = (0..n)
            .map(|i| ids.get(i + 1).map(|s| vec![s.as_str()]).unwrap_or_default())
            .collect();
        let refs: Vec<&[&str]> = refs.iter().map(Vec::as_slice).collect();
        let (order, stuck) = run(&defines, &refs);
        assert_eq!(order, (0..n).rev().collect::<Vec<_>>());
        assert!(stuck.is_empty());
    }
}
