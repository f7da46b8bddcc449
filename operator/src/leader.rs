//! Leader election through a coordination.k8s.io/v1 Lease: acquire when free or expired,
//! renew while leading, give up leadership when renewals fail for longer than the renew
//! deadline, so two replicas never both act. Writes use resourceVersion preconditions, so a
//! race between candidates is decided by the API server (one gets 409).
//!
//! Expiry is judged as client-go does: by when THIS replica last saw the lease record change,
//! on its own monotonic clock, never by the holder's written `renewTime` against the local
//! wall clock (the two clocks may disagree by more than a lease). Every API call is bounded by
//! the time left before the renew deadline, so a hung call cannot keep a replica acting after
//! its lease may have passed to another.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Lease timings; the defaults follow client-go (15s lease, 10s deadline, 2s retry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops acting (must be < lease_duration).
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Which Lease, who we are, and how fast to renew.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub timing: LeaseTiming,
}

pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The last lease record read and when this replica first saw it in that state.
    observed: Mutex<Option<ObservedRecord>>,
}

/// What identifies one renewal of a lease, and when it was first seen here.
#[derive(Clone, Debug, PartialEq)]
struct ObservedRecord {
    holder: String,
    renew_time: Option<Timestamp>,
    acquire_time: Option<Timestamp>,
    transitions: i32,
    duration: Duration,
    seen_at: Instant,
}

impl ObservedRecord {
    fn of(spec: &LeaseSpec, seen_at: Instant) -> Self {
        Self {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            ),
            seen_at,
        }
    }

    fn same_record(&self, other: &Self) -> bool {
        (
            &self.holder,
            self.renew_time,
            self.acquire_time,
            self.transitions,
        ) == (
            &other.holder,
            other.renew_time,
            other.acquire_time,
            other.transitions,
        )
    }
}

/// Remembers `spec` as observed at `now` unless it is the record already seen (then the first
/// sighting's time stands); returns the record with the time it was first seen.
fn observe(last: &mut Option<ObservedRecord>, spec: &LeaseSpec, now: Instant) -> ObservedRecord {
    let current = ObservedRecord::of(spec, now);
    match last {
        Some(prev) if prev.same_record(&current) => prev.clone(),
        _ => {
            *last = Some(current.clone());
            current
        }
    }
}

/// Whether a record first seen at `seen_at` has gone unrenewed for its whole duration.
fn expired(record: &ObservedRecord, now: Instant) -> bool {
    record.holder.is_empty() || now.saturating_duration_since(record.seen_at) > record.duration
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl LeaderElector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: Mutex::new(None),
        }
    }

    /// One round: returns whether we hold the lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let me = &self.settings.identity;
        let existing = self.api.get_opt(&self.settings.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec_for_new_holder(0)),
            };
            return conflict_is_false(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = {
            let mut last = self.observed.lock().unwrap_or_else(|e| e.into_inner());
            observe(&mut last, &spec, Instant::now())
        };
        let holder = record.holder.clone();
        if &holder == me {
            let mut renewed = spec;
            renewed.renew_time = Some(micro_now());
            renewed.lease_duration_seconds = Some(self.duration_secs());
            lease.spec = Some(renewed);
        } else if expired(&record, Instant::now()) {
            tracing::info!(previous = %holder, identity = %me, "taking over expired lease");
            lease.spec = Some(self.spec_for_new_holder(spec.lease_transitions.unwrap_or(0) + 1));
        } else {
            return Ok(false);
        }
        conflict_is_false(
            self.api
                .replace(&self.settings.name, &PostParams::default(), &lease)
                .await,
        )
    }

    /// Gives the lease up (on graceful shutdown) so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        lease.spec = Some(spec);
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.settings.timing.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    fn spec_for_new_holder(&self, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(self.duration_secs()),
            acquire_time: Some(micro_now()),
            renew_time: Some(micro_now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Runs forever: publishes `true` while leading. The receiver flips to `false` when
    /// renewals keep failing past the renew deadline or someone else holds the lease.
    pub fn spawn(self) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move { self.run_loop(tx).await });
        (rx, task)
    }

    async fn run_loop(self, tx: watch::Sender<bool>) {
        let mut last_renew: Option<Instant> = None;
        loop {
            let budget = attempt_budget(last_renew, Instant::now(), &self.settings.timing);
            match tokio::time::timeout(budget, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renew = Some(Instant::now()),
                Ok(Ok(false)) => last_renew = None,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, lease = %self.settings.name, "lease renewal failed")
                }
                Err(_) => {
                    tracing::warn!(timeout_ms = budget.as_millis() as u64, lease = %self.settings.name, "lease renewal timed out")
                }
            }
            let leading =
                last_renew.is_some_and(|t| t.elapsed() < self.settings.timing.renew_deadline);
            if *tx.borrow() != leading {
                tracing::info!(identity = %self.settings.identity, leading, "leadership changed");
            }
            tx.send_replace(leading);
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(self.settings.timing.retry_period).await;
        }
    }
}

/// The longest one acquire/renew round may take: while leading, what is left before the renew
/// deadline (so leadership is given up on time even if the API server never answers); while
/// not leading, one renew deadline. Never zero, so a round always gets a chance to finish.
fn attempt_budget(last_renew: Option<Instant>, now: Instant, timing: &LeaseTiming) -> Duration {
    let floor = Duration::from_millis(100);
    match last_renew {
        Some(t) => (t + timing.renew_deadline)
            .saturating_duration_since(now)
            .max(floor),
        None => timing.renew_deadline.max(floor),
    }
}

fn conflict_is_false(r: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match r {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    fn spec(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_whose_holder_clock_lags_is_not_expired_when_just_seen_to_change() {
        // The holder's clock is a minute behind ours: its renewTime looks old, but the record
        // just changed, so the holder is alive.
        let skewed = spec("a", Timestamp::now() - SignedDuration::from_secs(60));
        let now = Instant::now();
        let mut last = None;
        let record = observe(&mut last, &skewed, now);
        assert!(!expired(&record, now + Duration::from_secs(1)));
    }

    #[test]
    fn a_lease_unchanged_for_its_duration_since_first_seen_is_expired() {
        let s = spec("a", Timestamp::now());
        let t0 = Instant::now();
        let mut last = None;
        observe(&mut last, &s, t0);
        let later = observe(&mut last, &s, t0 + Duration::from_secs(10));
        assert_eq!(
            later.seen_at, t0,
            "an unchanged record keeps its first sighting"
        );
        assert!(!expired(&later, t0 + Duration::from_secs(10)));
        assert!(expired(&later, t0 + Duration::from_secs(16)));
    }

    #[test]
    fn a_renewal_restarts_the_expiry_clock() {
        let t0 = Instant::now();
        let mut last = None;
        observe(&mut last, &spec("a", Timestamp::now()), t0);
        let renewed = spec("a", Timestamp::now() + SignedDuration::from_secs(2));
        let r = observe(&mut last, &renewed, t0 + Duration::from_secs(14));
        assert!(!expired(&r, t0 + Duration::from_secs(20)));
    }

    #[test]
    fn a_lease_without_holder_is_free() {
        let mut last = None;
        let r = observe(&mut last, &LeaseSpec::default(), Instant::now());
        assert!(expired(&r, Instant::now()));
    }

    #[test]
    fn a_leaders_renew_call_is_bounded_by_the_time_left_before_its_renew_deadline() {
        let timing = LeaseTiming::default();
        let t0 = Instant::now();
        let left = attempt_budget(Some(t0), t0 + Duration::from_secs(4), &timing);
        assert_eq!(left, Duration::from_secs(6));
        assert!(left < timing.lease_duration);
        let late = attempt_budget(Some(t0), t0 + Duration::from_secs(30), &timing);
        assert_eq!(late, Duration::from_millis(100));
        assert_eq!(attempt_budget(None, t0, &timing), timing.renew_deadline);
    }
}
