//! Refusals counted, not written one by one: a caller the agent does not serve (or one that
//! sends nothing in time, or is over its share of connections) costs a counter. The audit log
//! gets the first refusal of a uid for a reason in an interval at once, with its detail, and the
//! count of them all in one line when the interval ends (if there was more than the first) — so
//! a flood can neither fill the disk nor slow the agent down with audit lines, and a refusal is
//! still seen as it happens.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often the counted refusals go to the audit log.
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// Most distinct (uid, reason) pairs counted in one interval; beyond, they are counted under
/// one catch-all pair, so the tally itself stays small whatever a caller does.
const MAX_PAIRS: usize = 1024;

/// The refusals of the current interval.
#[derive(Debug)]
pub struct Tally {
    counts: BTreeMap<(u32, &'static str), u64>,
    since: Instant,
}

/// One line's worth: a uid, a reason, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The callers' uid (`u32::MAX` when it could not be read, or for pairs past the bound).
    pub uid: u32,
    /// Why they were refused.
    pub reason: &'static str,
    /// How many times.
    pub count: u64,
}

impl Tally {
    /// An empty tally starting now.
    pub fn new() -> Self {
        Tally { counts: BTreeMap::new(), since: Instant::now() }
    }

    /// Counts one refusal; `true` if it is the first of its uid and reason in this interval
    /// (to be written at once).
    pub fn count(&mut self, uid: u32, reason: &'static str) -> bool {
        let key = if self.counts.len() < MAX_PAIRS || self.counts.contains_key(&(uid, reason)) {
            (uid, reason)
        } else {
            (u32::MAX, "other refusals (too many kinds to tell apart)")
        };
        let count = self.counts.entry(key).or_default();
        *count += 1;
        *count == 1 && key == (uid, reason)
    }

    /// When the current interval ends.
    pub fn due(&self) -> Instant {
        self.since + AUDIT_INTERVAL
    }

    /// The interval's counts of more than one refusal (the first was written at once), if it
    /// is over (or `force`), and a new interval.
    pub fn take_if_due(&mut self, now: Instant, force: bool) -> Option<(Duration, Vec<Counted>)> {
        if !force && now < self.due() {
            return None;
        }
        let span = now.saturating_duration_since(self.since);
        self.since = now;
        let lines = std::mem::take(&mut self.counts)
            .into_iter()
            .filter(|(_, count)| *count > 1)
            .map(|((uid, reason), count)| Counted { uid, reason, count })
            .collect();
        Some((span, lines))
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_a_few_counts_and_the_tally_stays_bounded() {
        let mut tally = Tally::new();
        let firsts: usize =
            (0..100_000).map(|_| usize::from(tally.count(65534, "not allowed"))).sum();
        assert_eq!(firsts, 1, "only the first is written at once");
        for uid in 0..5_000 {
            tally.count(uid, "no request in time");
            tally.count(uid, "no request in time");
        }
        assert!(tally.take_if_due(Instant::now(), false).is_none(), "not due yet");
        let (_, lines) = tally.take_if_due(Instant::now(), true).expect("forced");
        assert!(lines.len() <= MAX_PAIRS + 1, "{} lines", lines.len());
        let flood = lines.iter().find(|l| l.uid == 65534).expect("the flood");
        assert_eq!(flood.count, 100_000);
        assert_eq!(lines.iter().map(|l| l.count).sum::<u64>(), 110_000, "every refusal counted");
        assert!(tally.take_if_due(Instant::now(), true).expect("empty").1.is_empty());
    }
}
