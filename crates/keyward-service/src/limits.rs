//! Rate limits and lockouts, kept in memory: a fixed one-minute window per request source and
//! per authenticated box, and a ten-minute count of failed authentications per source. A source
//! is a [`SourcePrefix`] (an IPv4 address, an IPv6 /64). Each process counts on its own; behind a
//! load balancer the effective limit is the per-process limit times the number of processes — an
//! operator sizes it so. A refusal is a 429 (or a 403 for a lockout) with the reason, which the
//! client turns into exit 9.
//!
//! The table is bounded. When it is full, stale windows go first, then the counters with the
//! fewest counts: a flood of new sources pushes out other sources that sent a request or two,
//! never one that is locked out or near its limit, and a new source is always counted (a full
//! table never refuses everyone).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::SourcePrefix;

/// Requests allowed per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Per source (0: no limit).
    pub per_source: u32,
    /// Per box (0: no limit).
    pub per_box: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { per_source: 600, per_box: 120 }
    }
}

/// Most counters tracked by default.
pub const MAX_TRACKED: usize = 100_000;
/// Failed authentications from one source in one lockout window before it is locked out.
pub const LOCKOUT_AFTER: u32 = 10;
/// The lockout window, in seconds.
pub const LOCKOUT_WINDOW_SECS: i64 = 600;
/// The rate window, in seconds.
const RATE_WINDOW_SECS: i64 = 60;

/// What one counter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counter {
    /// Requests from a source.
    Requests(SourcePrefix),
    /// Authenticated requests of a box.
    BoxRequests(String),
    /// Failed authentications from a source.
    Failures(SourcePrefix),
}

impl Counter {
    fn window_secs(&self) -> i64 {
        match self {
            Counter::Failures(_) => LOCKOUT_WINDOW_SECS,
            Counter::Requests(_) | Counter::BoxRequests(_) => RATE_WINDOW_SECS,
        }
    }

    fn window(&self, now: i64) -> i64 {
        now.div_euclid(self.window_secs())
    }
}

/// A counter's current window and its count in it.
#[derive(Debug, Clone, Copy)]
struct Window {
    index: i64,
    count: u32,
}

/// Counters per source and box.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    capacity: usize,
    windows: Mutex<HashMap<Counter, Window>>,
}

impl RateLimiter {
    /// A limiter with these limits and the default table size.
    pub fn new(limits: RateLimits) -> Self {
        RateLimiter::with_capacity(limits, MAX_TRACKED)
    }

    /// A limiter that tracks at most `capacity` counters.
    pub fn with_capacity(limits: RateLimits, capacity: usize) -> Self {
        RateLimiter { limits, capacity: capacity.max(8), windows: Mutex::new(HashMap::new()) }
    }

    /// Adds one to `counter` in its current window; returns the new count (`u32::MAX` if the
    /// table's lock is poisoned: a panic elsewhere must not stop the counting).
    fn bump(&self, counter: Counter, now: i64) -> u32 {
        let Ok(mut windows) = self.windows.lock() else { return u32::MAX };
        if windows.len() >= self.capacity && !windows.contains_key(&counter) {
            make_room(&mut windows, self.capacity, now);
        }
        let index = counter.window(now);
        let window = windows.entry(counter).or_insert(Window { index, count: 0 });
        if window.index != index {
            *window = Window { index, count: 0 };
        }
        window.count = window.count.saturating_add(1);
        window.count
    }

    fn count(&self, counter: &Counter, now: i64) -> u32 {
        let Ok(windows) = self.windows.lock() else { return u32::MAX };
        windows.get(counter).filter(|w| w.index == counter.window(now)).map_or(0, |w| w.count)
    }

    /// Counts a request from `source`; `false` if that source is over its limit.
    pub fn allow_source(&self, source: SourcePrefix, now: i64) -> bool {
        let limit = self.limits.per_source;
        limit == 0 || self.bump(Counter::Requests(source), now) <= limit
    }

    /// Counts an authenticated request of `box_name`; `false` if that box is over its limit.
    /// Only verified requests count, so nobody can use up a box's allowance by naming it.
    pub fn allow_box(&self, box_name: &str, now: i64) -> bool {
        let limit = self.limits.per_box;
        limit == 0 || self.bump(Counter::BoxRequests(box_name.to_string()), now) <= limit
    }

    /// Whether `source` is still within its rate this minute, without counting a request.
    pub fn source_within_rate(&self, source: SourcePrefix, now: i64) -> bool {
        let limit = self.limits.per_source;
        limit == 0 || self.count(&Counter::Requests(source), now) < limit
    }

    /// Whether `box_name` is still within its rate this minute, without counting a request.
    pub fn box_within_rate(&self, box_name: &str, now: i64) -> bool {
        let limit = self.limits.per_box;
        limit == 0 || self.count(&Counter::BoxRequests(box_name.to_string()), now) < limit
    }

    /// Records a failed authentication (bad signature, stale timestamp, unknown signer, replay,
    /// bad proof) from `source`.
    pub fn record_failure(&self, source: SourcePrefix, now: i64) {
        self.bump(Counter::Failures(source), now);
    }

    /// Whether `source` has failed too often in the current lockout window.
    pub fn locked_out(&self, source: SourcePrefix, now: i64) -> bool {
        self.count(&Counter::Failures(source), now) >= LOCKOUT_AFTER
    }

    /// How many counters are tracked.
    pub fn tracked(&self) -> usize {
        self.windows.lock().map_or(0, |w| w.len())
    }
}

/// Frees about an eighth of a full table: first every stale window, then (if that was not
/// enough) the counters with the fewest counts. Costs one pass over the table, at most once per
/// eighth of its size in new counters.
fn make_room(windows: &mut HashMap<Counter, Window>, capacity: usize, now: i64) {
    windows.retain(|counter, w| w.index == counter.window(now));
    let target = capacity - capacity / 8;
    if windows.len() <= target {
        return;
    }
    let excess = windows.len() - target;
    let mut counts: Vec<u32> = windows.values().map(|w| w.count).collect();
    let (_, threshold, _) = counts.select_nth_unstable(excess - 1);
    let threshold = *threshold;
    let mut removed_at_threshold = 0;
    let below = windows.values().filter(|w| w.count < threshold).count();
    windows.retain(|_, w| {
        if w.count < threshold {
            false
        } else if w.count == threshold && below + removed_at_threshold < excess {
            removed_at_threshold += 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> SourcePrefix {
        SourcePrefix::V4([10, 0, 0, last])
    }

    fn source(n: u32) -> SourcePrefix {
        SourcePrefix::V4(n.to_be_bytes())
    }

    #[test]
    fn a_window_allows_its_limit_then_refuses_until_the_next_minute() {
        let limiter = RateLimiter::new(RateLimits { per_source: 3, per_box: 0 });
        assert!((0..3).all(|_| limiter.allow_source(v4(1), 60)));
        assert!(!limiter.allow_source(v4(1), 61));
        assert!(limiter.allow_source(v4(2), 61), "another source has its own window");
        assert!(limiter.allow_source(v4(1), 120), "a new minute starts afresh");
        assert!((0..1000).all(|_| limiter.allow_box("b", 60)), "0 means no limit");
    }

    #[test]
    fn repeated_failures_lock_out_that_source_only() {
        let limiter = RateLimiter::new(RateLimits::default());
        for _ in 0..LOCKOUT_AFTER {
            assert!(!limiter.locked_out(v4(9), 100));
            limiter.record_failure(v4(9), 100);
        }
        assert!(limiter.locked_out(v4(9), 101));
        assert!(!limiter.locked_out(v4(10), 101), "another source is not affected");
        assert!(!limiter.locked_out(v4(9), 100 + LOCKOUT_WINDOW_SECS), "the lockout ends");
    }

    #[test]
    fn a_full_table_still_counts_new_sources_and_keeps_a_lockout() {
        let capacity = 1000;
        let limiter =
            RateLimiter::with_capacity(RateLimits { per_source: 5, per_box: 0 }, capacity);
        let attacker = v4(66);
        for _ in 0..LOCKOUT_AFTER {
            limiter.record_failure(attacker, 100);
        }
        // A flood of three tables' worth of one-request sources, all in the same minute.
        for n in 0..3 * u32::try_from(capacity).expect("small") {
            assert!(limiter.allow_source(source(0x0b00_0000 + n), 100), "source {n} refused");
            assert!(limiter.tracked() <= capacity, "the table stays bounded");
        }
        assert!(limiter.locked_out(attacker, 101), "the flood did not evict the lockout");
        assert!(limiter.allow_source(v4(1), 101), "a newcomer is still served");
    }
}
