//! The key while the agent holds it: in locked memory left out of core dumps
//! (keyward_core::memory::LockedBytes), wiped when its time is up, on `lock`, on a signal and on
//! exit.

use std::time::{Duration, Instant};

use keyward_core::DataKey;
use keyward_core::memory::LockedBytes;
/// The key held, and until when.
#[derive(Debug)]
pub struct Held {
    key: LockedBytes,
    until: Instant,
}

/// What the agent holds: a key with its deadline, or nothing.
#[derive(Debug, Default)]
pub struct Holder {
    held: Option<Held>,
}

impl Holder {
    /// Holds `key` for `ttl` from now (the `DataKey` is dropped, and so wiped, at once).
    pub fn hold(&mut self, key: DataKey, ttl: Duration) -> std::io::Result<()> {
        let key = LockedBytes::copy_of(key.expose())?;
        self.held = Some(Held { key, until: Instant::now() + ttl });
        Ok(())
    }

    /// Runs `use_key` on the key, in its locked memory (no copy), if one is held and its time
    /// is not up.
    pub fn with_key<R>(&mut self, use_key: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.wipe_if_expired();
        self.held.as_ref().map(|held| use_key(held.key.as_slice()))
    }

    /// Time left, if a key is held.
    pub fn time_left(&mut self) -> Option<Duration> {
        self.wipe_if_expired();
        self.held.as_ref().map(|held| held.until.saturating_duration_since(Instant::now()))
    }

    /// When the held key is due to be wiped.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.as_ref().map(|held| held.until)
    }

    /// Wipes the key if its time is up.
    pub fn wipe_if_expired(&mut self) {
        if self.deadline().is_some_and(|until| Instant::now() >= until) {
            self.wipe();
        }
    }

    /// Wipes the key now (LockedBytes zeroizes on drop, then unmaps).
    pub fn wipe(&mut self) {
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_held_for_its_time_and_then_gone() {
        use zeroize::Zeroizing;
        let mut holder = Holder::default();
        let key = DataKey::import(Zeroizing::new(vec![7u8; 32])).expect("key");
        holder.hold(key, Duration::from_millis(50)).expect("locked memory");
        assert_eq!(holder.with_key(<[u8]>::to_vec), Some(vec![7u8; 32]));
        std::thread::sleep(Duration::from_millis(80));
        assert!(holder.with_key(|_| ()).is_none() && holder.time_left().is_none());
        let key = DataKey::import(Zeroizing::new(vec![7u8; 32])).expect("key");
        holder.hold(key, Duration::from_secs(60)).expect("locked memory");
        holder.wipe();
        assert!(holder.with_key(|_| ()).is_none());
    }
}
