//! Leader election through a coordination.k8s.io/v1 Lease: acquire when free or expired,
//! renew while leading, give up leadership when renewals fail for longer than the renew
//! deadline, so two replicas never both act. Writes use resourceVersion preconditions, so a
//! race between candidates is decided by the API server (one gets 409).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
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
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl LeaderElector {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
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
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if &holder == me {
            let mut renewed = spec;
            renewed.renew_time = Some(micro_now());
            renewed.lease_duration_seconds = Some(self.duration_secs());
            lease.spec = Some(renewed);
        } else if holder.is_empty() || expired(&spec) {
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
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renew = Some(Instant::now()),
                Ok(false) => last_renew = None,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.settings.name, "lease renewal failed")
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

/// Whether a lease's holder stopped renewing for longer than its duration.
fn expired(spec: &LeaseSpec) -> bool {
    let Some(renew) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renew.0 + SignedDuration::from_secs(secs) < Timestamp::now()
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

    #[test]
    fn a_lease_renewed_long_ago_is_expired_and_a_fresh_one_is_not() {
        let old = Timestamp::now() - SignedDuration::from_secs(30);
        let stale = LeaseSpec {
            renew_time: Some(MicroTime(old)),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        let fresh = LeaseSpec {
            renew_time: Some(micro_now()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        assert!(expired(&stale));
        assert!(!expired(&fresh));
        assert!(
            expired(&LeaseSpec::default()),
            "a lease nobody ever renewed is free"
        );
    }
}
