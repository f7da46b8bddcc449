//! No revision loses its pods or its Service while a router may still send it requests.
//!
//! Routers read the routes ConfigMap through a volume, which the kubelet refreshes up to a
//! minute or more after the operator writes it. When a promotion or rollback drops a revision
//! from the routes, its Deployment keeps its replicas (and its Service is kept) until every
//! ready router reports in `/admin/stats` that it serves the new table (`routesGeneration`
//! equal to the ConfigMap's `generation`). Routers that predate the field report none and are
//! not waited for (the previous behaviour); a router that cannot be read holds the revision
//! for `Context::unreadable_router_wait` (past a kubelet's refresh time it cannot be serving
//! the old table from a healthy pod), then the revision is let go with a log line.

use std::collections::BTreeMap;
use std::time::Duration;

use deepseek_crds::DeepSeekDeployment;

use crate::context::Context;
use crate::desired::router::routes_generation;
use crate::rollout::Decision;
use crate::status::Observed;

/// How soon a round that holds a revision looks again.
pub const REQUEUE_DRAINING: Duration = Duration::from_secs(5);

/// Revisions with running pods that the new routes leave out and the decision would scale
/// down, with the replicas they have now.
pub fn leaving(
    routes: &[(String, i32)],
    replicas: &BTreeMap<String, i32>,
    observed: &Observed,
) -> BTreeMap<String, i32> {
    let mut out = BTreeMap::new();
    for d in &observed.deployments {
        let Some(rev) = d.revision.as_ref() else {
            continue;
        };
        let routed = routes.iter().any(|(r, _)| r == rev);
        let decided = replicas.get(rev).copied().unwrap_or(0);
        if !routed && d.replicas > 0 && decided < d.replicas {
            *out.entry(rev.clone()).or_insert(0) += d.replicas;
        }
    }
    out
}

/// Whether every router serves `generation` (routers without the field are not waited for).
pub fn confirmed(reports: &[Option<String>], generation: &str) -> bool {
    reports
        .iter()
        .all(|r| r.as_deref().is_none_or(|g| g == generation))
}

/// Holds (in `decision.replicas`) the revisions leaving the routes until the routers confirm
/// the new table; returns the held revisions (their Service must be kept too).
pub async fn hold(
    ctx: &Context,
    dsd: &DeepSeekDeployment,
    decision: &mut Decision,
    observed: &Observed,
) -> Vec<String> {
    let routes = decision.routes();
    let leaving = leaving(&routes, &decision.replicas, observed);
    let uid = dsd.metadata.uid.clone().unwrap_or_default();
    if leaving.is_empty() {
        ctx.clear_unreadable_routers(&uid);
        return Vec::new();
    }
    let generation = routes_generation(&routes);
    let ok = match ctx.stats.routes_generations(dsd).await {
        Ok(reports) => confirmed(&reports, &generation),
        Err(e) => {
            let waited = ctx.unreadable_router_waited(&uid, &generation);
            if waited >= ctx.unreadable_router_wait {
                tracing::warn!(error = %e, ?waited, ?leaving, "routers still unreadable; letting the revisions go");
                true
            } else {
                tracing::info!(error = %e, "routers unreadable; keeping revisions they may route to");
                false
            }
        }
    };
    if ok {
        ctx.clear_unreadable_routers(&uid);
        return Vec::new();
    }
    tracing::info!(?leaving, %generation, "waiting for routers to serve the new routes");
    for (rev, n) in &leaving {
        decision.replicas.insert(rev.clone(), *n);
    }
    leaving.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::DeploymentObservation;

    fn observed(revs: &[(&str, i32)]) -> Observed {
        Observed {
            deployments: revs
                .iter()
                .map(|(r, n)| DeploymentObservation {
                    name: format!("chat-{r}"),
                    revision: Some(r.to_string()),
                    replicas: *n,
                    current_replicas: *n,
                    ready_replicas: *n,
                })
                .collect(),
            pods: vec![],
        }
    }

    #[test]
    fn a_promoted_canarys_old_stable_is_leaving_with_its_replicas() {
        let routes = vec![("new".to_string(), 100)];
        let decided = BTreeMap::from([("new".to_string(), 2), ("old".to_string(), 0)]);
        let got = leaving(&routes, &decided, &observed(&[("new", 2), ("old", 2)]));
        assert_eq!(got, BTreeMap::from([("old".to_string(), 2)]));
        let scaled_down = observed(&[("new", 2), ("old", 0)]);
        assert!(leaving(&routes, &decided, &scaled_down).is_empty());
    }

    #[test]
    fn routers_confirm_only_when_all_serve_the_new_generation() {
        let g = routes_generation(&[("new".to_string(), 100)]);
        assert!(confirmed(&[Some(g.clone()), Some(g.clone())], &g));
        assert!(!confirmed(&[Some(g.clone()), Some("old".into())], &g));
        assert!(
            confirmed(&[None, Some(g.clone())], &g),
            "routers without the field"
        );
        assert!(confirmed(&[], &g), "no ready router routes anything");
    }

    #[test]
    fn the_generation_changes_with_the_table() {
        let a = routes_generation(&[("s".to_string(), 90), ("c".to_string(), 10)]);
        let b = routes_generation(&[("s".to_string(), 80), ("c".to_string(), 20)]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }
}
