//! The history of stable revisions (newest first, at most `revisionHistoryLimit`): what a
//! promotion pushes, what a manual rollback takes out, and the trimming to the limit.

use deepseek_crds::{HistoryEntry, RevisionRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `revisionHistoryLimit` as a length (the schema keeps it within 1..=10; 3 when nonsense).
pub fn limit(revision_history_limit: i32) -> usize {
    usize::try_from(revision_history_limit)
        .ok()
        .filter(|l| *l > 0)
        .unwrap_or(3)
}

/// Records that `old` stopped being stable at `now` because `new` replaced it: `old` goes to
/// the front, `new` leaves the history (it serves now), and the list is cut to `limit`.
pub fn push(
    history: &mut Vec<HistoryEntry>,
    old: &RevisionRef,
    new: &str,
    now: &Time,
    limit: usize,
) {
    history.retain(|h| h.hash != old.hash && h.hash != new);
    history.insert(
        0,
        HistoryEntry {
            hash: old.hash.clone(),
            model_digest: old.model_digest.clone(),
            image: old.image.clone(),
            promoted_at: Some(now.clone()),
        },
    );
    history.truncate(limit);
}

/// The entry for `hash`, as a revision reference.
pub fn find(history: &[HistoryEntry], hash: &str) -> Option<RevisionRef> {
    history
        .iter()
        .find(|h| h.hash == hash)
        .map(|h| RevisionRef {
            hash: h.hash.clone(),
            model_digest: h.model_digest.clone(),
            image: h.image.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn r(hash: &str) -> RevisionRef {
        RevisionRef {
            hash: hash.into(),
            ..RevisionRef::default()
        }
    }

    #[test]
    fn pushes_newest_first_and_never_exceeds_the_limit() {
        let now = Time(Timestamp::UNIX_EPOCH);
        let mut h = Vec::new();
        for (old, new) in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")] {
            push(&mut h, &r(old), new, &now, 3);
            assert!(h.len() <= 3);
        }
        let hashes: Vec<&str> = h.iter().map(|e| e.hash.as_str()).collect();
        assert_eq!(hashes, ["d", "c", "b"]);
    }

    #[test]
    fn a_revision_that_serves_again_leaves_the_history() {
        let now = Time(Timestamp::UNIX_EPOCH);
        let mut h = Vec::new();
        push(&mut h, &r("a"), "b", &now, 3);
        push(&mut h, &r("b"), "c", &now, 3);
        // Rolling back from c to a: c joins, a leaves.
        push(&mut h, &r("c"), "a", &now, 3);
        let hashes: Vec<&str> = h.iter().map(|e| e.hash.as_str()).collect();
        assert_eq!(hashes, ["c", "b"]);
    }

    #[test]
    fn a_nonsense_limit_falls_back_to_three() {
        assert_eq!(limit(0), 3);
        assert_eq!(limit(-1), 3);
        assert_eq!(limit(5), 5);
    }
}
