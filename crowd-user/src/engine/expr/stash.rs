//! The parsers' stash (`stash:` in a node, `GetFromStash` in expressions): named caches with a
//! time to live and a size bound, on the events' own clock.
use std::collections::HashMap;

/// The parsers' stash: named caches of values by key with a time to live and a size bound,
/// written by nodes that succeed and read by `GetFromStash(name, key)`.
#[derive(Debug, Default)]
pub struct Stash {
    caches: std::sync::Mutex<HashMap<String, StashCache>>,
    /// The time of the event being parsed (Unix seconds), passed in by the pipeline: the stash
    /// reads no clock, so a replay of old logs expires entries as the live daemon would.
    now: Clock,
}

/// The latest event time seen, advanced at every stage of every event: an atomic, not a lock.
#[derive(Debug, Default)]
struct Clock(std::sync::atomic::AtomicU64);

impl Clock {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn advance(&self, now: f64) {
        use std::sync::atomic::Ordering::Relaxed;
        // Times are not negative: their bits order as they do.
        if now > 0.0 {
            self.0.fetch_max(now.to_bits(), Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct StashCache {
    entries: HashMap<String, (String, f64)>,
    order: std::collections::VecDeque<String>,
}

impl Stash {
    /// Keeps `value` under `key` in cache `name` for `ttl` seconds, dropping the oldest entries
    /// beyond `size`.
    pub fn set(&self, name: &str, key: String, value: String, ttl: f64, size: usize) {
        let until = self.now() + ttl.max(0.0);
        let mut caches = self.caches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = caches.entry(name.to_owned()).or_default();
        if c.entries.insert(key.clone(), (value, until)).is_none() {
            c.order.push_back(key);
        }
        while c.entries.len() > size {
            let Some(old) = c.order.pop_front() else { break };
            c.entries.remove(&old);
        }
    }

    /// The live value under `key` in cache `name`.
    #[must_use]
    pub fn get(&self, name: &str, key: &str) -> Option<String> {
        let caches = self.caches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (v, until) = caches.get(name)?.entries.get(key)?;
        (self.now() < *until).then(|| v.clone())
    }

    /// The time of the event being parsed, as the pipeline last said (it never goes back).
    pub fn advance(&self, now: f64) {
        self.now.advance(now);
    }

    fn now(&self) -> f64 {
        self.now.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_their_ttl_on_the_events_clock() {
        let s = Stash::default();
        s.advance(1000.0);
        s.set("c", "k".into(), "v".into(), 60.0, 10);
        s.advance(1059.0);
        assert_eq!(s.get("c", "k").as_deref(), Some("v"));
        s.advance(1061.0);
        assert_eq!(s.get("c", "k"), None, "expired by the events' time, not the wall clock");
        s.advance(5.0);
        assert_eq!(s.get("c", "k"), None, "time never goes back");
        for i in 0..5 {
            s.set("small", format!("k{i}"), "v".into(), 60.0, 3);
        }
        assert_eq!(s.get("small", "k0"), None, "the oldest beyond the size go");
        assert!(s.get("small", "k4").is_some());
    }
}
