//! Every transition of the state machine, driven round by round through `decide` and
//! `Decision::write_to` (the same path the reconciler takes) with a fake clock. This module
//! holds the simulator; `canary` covers the automatic canary walk (steps, analysis, automatic
//! rollback, pauses, deadlines), `revisions` the rest of a revision's life (no-step rollouts,
//! manual rollback, history, lost replicas, baselines, replica sizing).

mod canary;
mod revisions;

use super::*;
use deepseek_crds::{Phase, StatsBaseline};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;

const A: &str = "aaaaaaaaaa";
const B: &str = "bbbbbbbbbb";
const C: &str = "cccccccccc";
const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

fn rev(hash: &str) -> RevisionRef {
    RevisionRef {
        hash: hash.into(),
        model_digest: format!("digest-{hash}"),
        image: format!("image:{hash}"),
    }
}

fn spec(rollout: serde_json::Value) -> DeepSeekDeploymentSpec {
    serde_json::from_value(json!({
        "model": {"name": "m", "source": {"url": {"url": "http://x"}},
            "files": [{"path": "m.gguf", "sha256": SHA}], "format": "gguf"},
        "replicas": 4,
        "rollout": rollout,
    }))
    .expect("spec fixture")
}

/// Steps 25% (pause 60s) and 50% (no pause), judged after 20 requests, deadline 600s.
fn two_steps() -> DeepSeekDeploymentSpec {
    spec(json!({
        "steps": [{"weight": 25, "pause": "60s"}, {"weight": 50}],
        "analysis": {"maxErrorRate": 0.05, "maxP99LatencyMs": 500, "minRequests": 20},
        "progressDeadlineSeconds": 600,
        "revisionHistoryLimit": 2,
    }))
}

/// The cluster and the clock, advanced by hand between rounds.
struct Sim {
    spec: DeepSeekDeploymentSpec,
    status: DeepSeekDeploymentStatus,
    obs: Observed,
    now: i64,
}

const BOUNDS: [f64; 3] = [0.1, 0.5, 1.0];

impl Sim {
    /// A stable revision A with all replicas ready, the spec now describing `desired`.
    fn serving(spec: DeepSeekDeploymentSpec, desired: &str) -> Self {
        let mut sim = Sim {
            obs: Observed {
                desired: rev(A),
                stats: Some(Stats::new()),
                ..Observed::default()
            },
            status: DeepSeekDeploymentStatus::default(),
            spec,
            now: 1000,
        };
        sim.round();
        sim.ready(A, 4);
        sim.round();
        sim.obs.desired = rev(desired);
        sim
    }

    fn round(&mut self) -> Decision {
        let now = Time(Timestamp::UNIX_EPOCH + SignedDuration::from_secs(self.now));
        let d = decide(&self.spec, &self.status, &self.obs, &now);
        d.write_to(&mut self.status);
        self.status.phase = Some(if d.paused {
            Phase::Paused
        } else {
            Phase::Progressing
        });
        self.status.ready_replicas = Some(self.obs.ready_of(A));
        d
    }

    fn ready(&mut self, hash: &str, n: i32) {
        self.obs.ready.insert(hash.into(), n);
    }

    fn wait(&mut self, secs: i64) {
        self.now += secs;
    }

    /// `requests` more requests to `hash`, `errors` of them failed, all under `bound` seconds.
    fn traffic(&mut self, hash: &str, requests: u64, errors: u64, bound: usize) {
        let stats = self.obs.stats.get_or_insert_with(Stats::new);
        let s = stats.entry(hash.into()).or_insert_with(|| RevisionStats {
            bounds: BOUNDS.to_vec(),
            buckets: vec![0; BOUNDS.len()],
            ..RevisionStats::default()
        });
        s.requests += requests;
        s.errors += errors;
        for b in s.buckets.iter_mut().skip(bound) {
            *b += requests;
        }
    }

    fn canary(&self) -> Option<&str> {
        self.status
            .canary_revision
            .as_ref()
            .map(|c| c.hash.as_str())
    }

    fn stable(&self) -> Option<&str> {
        self.status
            .stable_revision
            .as_ref()
            .map(|c| c.hash.as_str())
    }

    fn history(&self) -> Vec<&str> {
        self.status
            .history
            .iter()
            .map(|h| h.hash.as_str())
            .collect()
    }

    /// Starts canary B and walks it to step 1 with its weight set.
    fn at_step_one(spec: DeepSeekDeploymentSpec) -> Self {
        let mut sim = Sim::serving(spec, B);
        sim.round();
        sim.ready(B, 1);
        sim.round();
        sim
    }
}

fn reasons_of(d: &Decision) -> Vec<&'static str> {
    d.events.iter().map(|e| e.reason).collect()
}

/// A (stable) -> B -> C promoted without steps: history [B, A].
fn three_revisions() -> Sim {
    let mut sim = Sim::serving(spec(json!({"revisionHistoryLimit": 3})), B);
    sim.round();
    sim.ready(B, 4);
    sim.round();
    sim.obs.desired = rev(C);
    sim.round();
    sim.ready(C, 4);
    sim.round();
    assert_eq!((sim.stable(), sim.history()), (Some(C), vec![B, A]));
    sim
}
