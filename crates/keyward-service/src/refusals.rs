//! Refusals counted in memory and written down in aggregate. A refused request costs one counter
//! here, never a database write (an audit row each, fsync'd under a writer's lock, would let a
//! flood of bad requests stall every real write). The service drains the tally now and then into
//! one audit record; each refusal's reason also goes to the log, as one line.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Most distinct (route, code) pairs counted; more fold into one `other` row. Routes and codes
/// are a small fixed set, so this only bounds a service with more routes than expected.
const MAX_KINDS: usize = 64;

/// How many requests of one route were refused with one error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalCount {
    /// The route (`push`, `release`, …).
    pub route: &'static str,
    /// The error code answered (`unauthenticated`, `refused`, `rate-limited`, …).
    pub code: &'static str,
    /// How many.
    pub count: u64,
}

/// Refusal counts since the last drain.
#[derive(Debug, Default)]
pub struct RefusalTally {
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl RefusalTally {
    /// Counts one refusal.
    pub fn record(&self, route: &'static str, code: &'static str) {
        let Ok(mut counts) = self.counts.lock() else { return };
        let key = if counts.len() < MAX_KINDS || counts.contains_key(&(route, code)) {
            (route, code)
        } else {
            ("other", "other")
        };
        *counts.entry(key).or_default() += 1;
    }

    /// Takes every count, leaving the tally empty.
    pub fn drain(&self) -> Vec<RefusalCount> {
        let Ok(mut counts) = self.counts.lock() else { return Vec::new() };
        std::mem::take(&mut *counts)
            .into_iter()
            .map(|((route, code), count)| RefusalCount { route, code, count })
            .collect()
    }
}

/// One line for an audit record: `push unauthenticated ×3, recover refused ×1`.
pub fn summary(counts: &[RefusalCount]) -> String {
    counts
        .iter()
        .map(|c| format!("{} {} ×{}", c.route, c.code, c.count))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_drain_empties() {
        let tally = RefusalTally::default();
        for _ in 0..3 {
            tally.record("push", "unauthenticated");
        }
        tally.record("recover", "refused");
        let counts = tally.drain();
        assert_eq!(summary(&counts), "push unauthenticated ×3, recover refused ×1");
        assert!(tally.drain().is_empty());
    }
}
