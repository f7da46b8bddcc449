//! Buckets in this process's memory: the default, one budget per replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::bucket::{take_all, Bucket, BucketView, Limit};

pub struct MemoryStore {
    started: Instant,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Past this many buckets, full ones (idle clients) are dropped: a full bucket and a missing
/// one mean the same.
const PRUNE_ABOVE: usize = 100_000;

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl MemoryStore {
    /// One token from each keyed bucket, or none; the views in the keys' order.
    pub fn take(&self, keys: &[(String, Limit)]) -> (bool, Vec<BucketView>) {
        let now = self.started.elapsed().as_millis() as u64;
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, b| b.tokens < 1.0 || b.at_ms + 60_000 > now);
        }
        let mut taken: Vec<Bucket> = keys
            .iter()
            .map(|(k, l)| *map.entry(k.clone()).or_insert_with(|| Bucket::full(l, now)))
            .collect();
        let allowed = {
            let mut pairs: Vec<(&mut Bucket, &Limit)> =
                taken.iter_mut().zip(keys.iter().map(|(_, l)| l)).collect();
            take_all(&mut pairs, now)
        };
        let views = taken
            .iter()
            .zip(keys)
            .map(|(b, (k, l))| {
                map.insert(k.clone(), *b);
                b.view(l)
            })
            .collect();
        (allowed, views)
    }
}
