//! Rate limits per access key: a token bucket of `burst` requests that
//! refills at `rate` per second, kept as its theoretical arrival time (the
//! generic cell rate algorithm): one number per key, one hash probe and a
//! comparison per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys remembered; past it, the keys whose buckets are full again
/// (idle long enough) are forgotten, which changes nothing for them.
const MAX_KEYS: usize = 10_000;

/// A request rate per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

pub struct RateLimiter {
    /// Time between two requests at the sustained rate.
    interval: Duration,
    /// How far ahead of now a key's arrival time may run: `burst - 1`
    /// intervals.
    tolerance: Duration,
    start: Instant,
    /// Per key id: when its bucket is full again, as time since `start`.
    full_at: Mutex<HashMap<String, Duration>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        let interval = Duration::from_secs_f64(1.0 / limit.per_second.max(1e-6));
        RateLimiter {
            interval,
            tolerance: interval * limit.burst.max(1).saturating_sub(1),
            start: Instant::now(),
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is
    /// there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, self.start.elapsed())
    }

    fn check_at(&self, key: &str, now: Duration) -> Result<(), Duration> {
        let mut map = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        let full_at = map.get(key).copied().unwrap_or(now).max(now);
        let allowed_from = full_at.saturating_sub(self.tolerance);
        if now < allowed_from {
            return Err(allowed_from - now);
        }
        let next = full_at + self.interval;
        match map.get_mut(key) {
            Some(at) => *at = next,
            None => {
                if map.len() >= MAX_KEYS {
                    map.retain(|_, at| *at > now);
                }
                map.insert(key.to_owned(), next);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let t0 = secs(100.0);
        for _ in 0..3 {
            assert_eq!(limiter.check_at("k", t0), Ok(()));
        }
        let wait = limiter.check_at("k", t0).expect_err("the burst is spent");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another key has its own bucket.
        assert_eq!(limiter.check_at("other", t0), Ok(()));
        // Half a second later one more token; then none.
        assert_eq!(limiter.check_at("k", t0 + secs(0.5)), Ok(()));
        assert!(limiter.check_at("k", t0 + secs(0.5)).is_err());
        // Idle long enough: the whole burst again, not more.
        let later = t0 + secs(10.0);
        for _ in 0..3 {
            assert_eq!(limiter.check_at("k", later), Ok(()));
        }
        assert!(limiter.check_at("k", later).is_err());
    }
}
