//! Token-bucket arithmetic shared by the in-memory store and (as Lua) the Redis script: a
//! bucket of `capacity` tokens refilling at `per_ms` tokens a millisecond; a request takes one.

/// One bucket's rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Requests per minute, reported in `x-ratelimit-limit-requests`.
    pub per_minute: u32,
    /// Most tokens the bucket holds: the burst a client may send at once.
    pub capacity: u32,
}

impl Limit {
    pub fn per_ms(&self) -> f64 {
        f64::from(self.per_minute) / 60_000.0
    }
}

/// A bucket's state after a decision, for the response headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketView {
    /// Whole tokens left.
    pub remaining: u64,
    /// Milliseconds until one token is available (0 when one is).
    pub retry_after_ms: u64,
    /// Milliseconds until the bucket is full again.
    pub reset_ms: u64,
}

/// A bucket's level at `now_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    pub tokens: f64,
    pub at_ms: u64,
}

impl Bucket {
    pub fn full(limit: &Limit, now_ms: u64) -> Self {
        Self {
            tokens: f64::from(limit.capacity),
            at_ms: now_ms,
        }
    }

    /// Tokens after refilling up to `now_ms`.
    pub fn refill(&mut self, limit: &Limit, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        self.tokens = (self.tokens + elapsed * limit.per_ms()).min(f64::from(limit.capacity));
        self.at_ms = now_ms.max(self.at_ms);
    }

    pub fn view(&self, limit: &Limit) -> BucketView {
        let rate = limit.per_ms();
        BucketView {
            remaining: self.tokens.max(0.0).floor() as u64,
            retry_after_ms: if self.tokens >= 1.0 {
                0
            } else {
                ((1.0 - self.tokens) / rate).ceil() as u64
            },
            reset_ms: ((f64::from(limit.capacity) - self.tokens) / rate).ceil() as u64,
        }
    }
}

/// Takes one token from every bucket, or from none when any is empty (a request refused by the
/// global limit must not spend the client's budget). Returns whether it was taken.
pub fn take_all(buckets: &mut [(&mut Bucket, &Limit)], now_ms: u64) -> bool {
    for (b, l) in buckets.iter_mut() {
        b.refill(l, now_ms);
    }
    let allowed = buckets.iter().all(|(b, _)| b.tokens >= 1.0);
    if allowed {
        for (b, _) in buckets.iter_mut() {
            b.tokens -= 1.0;
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limit = Limit {
            per_minute: 600, // 10/s: one token per 100 ms
            capacity: 3,
        };
        let mut b = Bucket::full(&limit, 0);
        for _ in 0..3 {
            assert!(take_all(&mut [(&mut b, &limit)], 0));
        }
        assert!(!take_all(&mut [(&mut b, &limit)], 0));
        assert_eq!(b.view(&limit).retry_after_ms, 100);
        assert_eq!(b.view(&limit).reset_ms, 300);
        assert!(take_all(&mut [(&mut b, &limit)], 100));
        assert!(!take_all(&mut [(&mut b, &limit)], 150));
    }

    #[test]
    fn an_empty_bucket_spends_nothing_from_the_others() {
        let small = Limit {
            per_minute: 60,
            capacity: 1,
        };
        let big = Limit {
            per_minute: 60,
            capacity: 10,
        };
        let mut a = Bucket::full(&small, 0);
        let mut g = Bucket::full(&big, 0);
        assert!(take_all(&mut [(&mut a, &small), (&mut g, &big)], 0));
        assert!(!take_all(&mut [(&mut a, &small), (&mut g, &big)], 0));
        assert_eq!(g.view(&big).remaining, 9);
    }
}
