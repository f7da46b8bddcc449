//! Which revision gets a request. Without a session header: smooth weighted round robin
//! (nginx's algorithm), deterministic and exact: over every run of 100 requests each revision
//! gets exactly its weight, interleaved rather than in bursts. With a session header: a stable
//! hash of its value picks a point in 0..100 and the revision whose cumulative weight range
//! holds it, so a conversation stays on one revision and raising a canary's weight only moves
//! the sessions in the added range.

use std::sync::Mutex;

use super::config::TOTAL_WEIGHT;

#[derive(Debug)]
pub struct Splitter {
    weights: Vec<i64>,
    total: i64,
    /// Smooth WRR's "current weight" per revision; a short critical section per request.
    current: Mutex<Vec<i64>>,
}

impl Splitter {
    /// `weights` sum to a positive total (the config guarantees 100).
    pub fn new(weights: &[u32]) -> Self {
        let weights: Vec<i64> = weights.iter().map(|&w| i64::from(w)).collect();
        Self {
            total: weights.iter().sum(),
            current: Mutex::new(vec![0; weights.len()]),
            weights,
        }
    }

    /// The next revision index for a request without a session.
    pub fn next(&self) -> usize {
        // A poisoned lock only means another request panicked mid-update; the counters are
        // still valid integers, so keep going.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut best = 0;
        for (i, w) in self.weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= self.total;
        best
    }

    /// The revision for a session key: the same key always maps to the same index while the
    /// weights stay the same.
    pub fn sticky(&self, key: &[u8]) -> usize {
        let point = (mix(fnv1a(key)) % TOTAL_WEIGHT as u64) as i64;
        let scaled = point * self.total / i64::from(TOTAL_WEIGHT);
        let mut upper = 0;
        for (i, w) in self.weights.iter().enumerate() {
            upper += w;
            if scaled < upper {
                return i;
            }
        }
        // Unreachable while weights sum to `total`; the last revision is a safe answer.
        self.weights.len().saturating_sub(1)
    }
}

/// FNV-1a: stable across processes and versions, unlike std's `DefaultHasher`, so every router
/// replica sends a session to the same revision.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads FNV's weak low bits before the `% 100`.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: &Splitter, n: usize, revisions: usize) -> Vec<usize> {
        let mut c = vec![0; revisions];
        for _ in 0..n {
            c[s.next()] += 1;
        }
        c
    }

    #[test]
    fn every_hundred_requests_split_exactly_by_weight() {
        let s = Splitter::new(&[10, 90]);
        for _ in 0..20 {
            assert_eq!(counts(&s, 100, 2), vec![10, 90]);
        }
    }

    #[test]
    fn three_revisions_split_exactly_including_a_zero_weight() {
        let s = Splitter::new(&[25, 0, 75]);
        assert_eq!(counts(&s, 400, 3), vec![100, 0, 300]);
    }

    #[test]
    fn the_canary_is_interleaved_not_sent_in_a_burst() {
        let s = Splitter::new(&[10, 90]);
        let picks: Vec<usize> = (0..100).map(|_| s.next()).collect();
        let canary: Vec<usize> = (0..100).filter(|&i| picks[i] == 0).collect();
        let gaps: Vec<usize> = canary.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, vec![10; 9]);
    }

    #[test]
    fn the_same_session_always_gets_the_same_revision() {
        let s = Splitter::new(&[50, 50]);
        let first = s.sticky(b"conversation-42");
        for _ in 0..100 {
            assert_eq!(s.sticky(b"conversation-42"), first);
        }
    }

    #[test]
    fn different_sessions_spread_by_weight() {
        let s = Splitter::new(&[10, 90]);
        let canary = (0..10_000)
            .filter(|i| s.sticky(format!("session-{i}").as_bytes()) == 0)
            .count();
        assert!(
            (800..=1200).contains(&canary),
            "canary got {canary} of 10000"
        );
    }

    #[test]
    fn a_zero_weight_revision_never_gets_a_session() {
        let s = Splitter::new(&[0, 100]);
        assert!((0..1000).all(|i| s.sticky(format!("s{i}").as_bytes()) == 1));
    }

    #[test]
    fn raising_the_canary_weight_keeps_its_existing_sessions() {
        let (low, high) = (Splitter::new(&[10, 90]), Splitter::new(&[30, 70]));
        for i in 0..1000 {
            let key = format!("s{i}");
            if low.sticky(key.as_bytes()) == 0 {
                assert_eq!(high.sticky(key.as_bytes()), 0, "{key} moved");
            }
        }
    }
}
