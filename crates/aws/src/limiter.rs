//! A client-side request rate limit.
//!
//! Identity Store allows 20 requests per second per API and identity store; going faster
//! only buys `ThrottlingException`s and backoff. Requests are spaced evenly, one every
//! `1/rate` seconds, shared by every fetch of the same source.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests at most `rate` a second.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    period: Duration,
    /// When the next request may go.
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// At most `rate` requests a second; 0 is taken as 1.
    pub(crate) fn per_second(rate: u32) -> Self {
        Self {
            period: Duration::from_secs(1) / rate.max(1),
            next: Mutex::new(None),
        }
    }

    /// Waits until a request may go, and books the slot.
    pub(crate) async fn acquire(&self) {
        let at = {
            // A panic elsewhere while holding the lock leaves a valid instant behind.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = match *next {
                Some(next) if next > now => next,
                _ => now,
            };
            *next = Some(at + self.period);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, not tokio's paused clock: its `test-util` feature would rebuild tokio and
    // everything above it for this crate's tests alone.
    #[tokio::test]
    async fn spaces_requests_evenly() {
        let limiter = RateLimiter::per_second(100);
        let start = Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        // The first goes at once, the other 10 one every 10 ms.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    }

    #[tokio::test]
    async fn zero_is_one_a_second() {
        let limiter = RateLimiter::per_second(0);
        assert_eq!(limiter.period, Duration::from_secs(1));
    }
}
