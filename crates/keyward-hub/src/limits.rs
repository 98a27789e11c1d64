//! Rate limits: a fixed one-minute window per request source (IP address) and per box, kept in
//! memory. Each hub process counts on its own; behind a load balancer the effective limit is the
//! per-process limit times the number of hubs — an operator sizes it so. A refusal is a 429 with
//! the reason, which the client turns into exit 9.

use std::collections::HashMap;
use std::sync::Mutex;

/// Requests allowed per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Per source address (0: no limit).
    pub per_source: u32,
    /// Per box (0: no limit).
    pub per_box: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { per_source: 600, per_box: 120 }
    }
}

/// Most keys tracked before old windows are dropped (bounds memory under a flood of sources).
const MAX_TRACKED: usize = 100_000;

/// Counters per key in the current minute.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: Option<RateLimits>,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(limits: RateLimits) -> Self {
        RateLimiter { limits: Some(limits), windows: Mutex::new(HashMap::new()) }
    }

    /// Counts one request for `key` (`source:…` or `box:…`) at `now`; `false` if over `limit`.
    fn allow(&self, key: String, limit: u32, now: i64) -> bool {
        if limit == 0 {
            return true;
        }
        let minute = now.div_euclid(60);
        let Ok(mut windows) = self.windows.lock() else { return true };
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, (window, _)| *window == minute);
        }
        let entry = windows.entry(key).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= limit
    }

    /// Counts a request from `source`; `false` if that source is over its limit.
    pub fn allow_source(&self, source: &str, now: i64) -> bool {
        let limit = self.limits.map_or(0, |l| l.per_source);
        self.allow(format!("source:{source}"), limit, now)
    }

    /// Counts a request about `box_name`; `false` if that box is over its limit.
    pub fn allow_box(&self, box_name: &str, now: i64) -> bool {
        let limit = self.limits.map_or(0, |l| l.per_box);
        self.allow(format!("box:{box_name}"), limit, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_then_refuses_until_the_next_minute() {
        let limiter = RateLimiter::new(RateLimits { per_source: 3, per_box: 0 });
        assert!((0..3).all(|_| limiter.allow_source("10.0.0.1", 60)));
        assert!(!limiter.allow_source("10.0.0.1", 61));
        assert!(limiter.allow_source("10.0.0.2", 61), "another source has its own window");
        assert!(limiter.allow_source("10.0.0.1", 120), "a new minute starts afresh");
        assert!((0..1000).all(|_| limiter.allow_box("b", 60)), "0 means no limit");
    }
}
