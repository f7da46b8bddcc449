//! Side effects of the operational children: discovery of the monitoring.coreos.com kinds (the
//! monitoring children are dropped before apply where the cluster lacks them), the zone of each
//! scheduled runtime pod (its node's label, for `status.zones`), and the backup CronJob's last
//! success.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deepseek_crds::DeepSeekDeployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::context::Context;
use crate::desired::deployment::ZONE_LABEL;
use crate::desired::{is_monitoring, naming, ChildKind};
use crate::error::Result;
use crate::reconcile::labels;
use crate::status_ops::{MonitoringState, OpsObserved, ZonedPod};

/// Group/version of the Prometheus operator's kinds.
pub const MONITORING_GROUP_VERSION: &str = "monitoring.coreos.com/v1";

/// Which of the monitoring kinds the operator creates the cluster does not serve (discovery).
pub async fn missing_monitoring_kinds(client: &Client) -> Result<Vec<String>> {
    let served: BTreeSet<String> = match client
        .list_api_group_resources(MONITORING_GROUP_VERSION)
        .await
    {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(kube::Error::Api(s)) if s.code == 404 => BTreeSet::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(ChildKind::MONITORING
        .iter()
        .filter(|k| !served.contains(k.plural()))
        .map(|k| k.kind().to_string())
        .collect())
}

/// Drops the monitoring children unless every monitoring kind is served; says which state holds.
/// Discovery is asked at most once per `DISCOVERY_TTL`, not on every round.
pub async fn gate_monitoring(
    ctx: &Context,
    dsd: &DeepSeekDeployment,
    objects: Vec<Value>,
) -> Result<(Vec<Value>, MonitoringState)> {
    if !dsd.spec.monitoring.enabled {
        return Ok((objects, MonitoringState::Disabled));
    }
    let missing = match ctx.cached_discovery() {
        Some(missing) => missing,
        None => {
            let missing = missing_monitoring_kinds(&ctx.client).await?;
            ctx.remember_discovery(missing.clone());
            missing
        }
    };
    if missing.is_empty() {
        return Ok((objects, MonitoringState::Applied));
    }
    tracing::info!(missing = ?missing, "monitoring CRDs not served; skipping monitoring children");
    let kept = objects.into_iter().filter(|o| !is_monitoring(o)).collect();
    Ok((kept, MonitoringState::CrdsMissing(missing)))
}

/// Zone of each scheduled runtime pod (its node's zone label), from the caches when the
/// Controller runs.
async fn zoned_pods(ctx: &Context, ns: &str, name: &str) -> Result<Vec<ZonedPod>> {
    let selector = naming::runtime_selector(name);
    let pods: Vec<Arc<Pod>> = match &ctx.stores {
        Some(stores) => stores.pods(ns, &selector),
        None => {
            let query = selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
            let list = api.list(&ListParams::default().labels(&query)).await?;
            list.items.into_iter().map(Arc::new).collect()
        }
    };
    let mut zone_of: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for pod in pods {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let zone = match node {
            Some(node) => match zone_of.get(&node) {
                Some(z) => z.clone(),
                None => {
                    let z = node_zone(ctx, &node).await?;
                    zone_of.insert(node, z.clone());
                    z
                }
            },
            None => None,
        };
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        out.push(ZonedPod {
            revision: pod.labels().get(labels::REVISION).cloned(),
            zone,
            ready,
        });
    }
    Ok(out)
}

async fn node_zone(ctx: &Context, node: &str) -> Result<Option<String>> {
    if let Some(stores) = &ctx.stores {
        return Ok(stores.node_zone(node).await);
    }
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    Ok(nodes
        .get_opt(node)
        .await?
        .and_then(|n| n.labels().get(ZONE_LABEL).cloned()))
}

/// Zones (only with `placement.zones`), monitoring state and the last backup.
pub async fn observe(
    ctx: &Context,
    dsd: &DeepSeekDeployment,
    monitoring: MonitoringState,
) -> Result<OpsObserved> {
    let ns = dsd.namespace().unwrap_or_default();
    let name = dsd.name_any();
    let pods = if dsd.spec.placement.zones.is_empty() {
        Vec::new()
    } else {
        zoned_pods(ctx, &ns, &name).await?
    };
    let last_backup = match &dsd.spec.backup {
        Some(_) => {
            let cron = naming::backup_name(&name);
            let job = match &ctx.stores {
                Some(stores) => stores.cron_job(&ns, &cron).map(|c| (*c).clone()),
                None => {
                    Api::<CronJob>::namespaced(ctx.client.clone(), &ns)
                        .get_opt(&cron)
                        .await?
                }
            };
            job.and_then(|c| c.status)
                .and_then(|s| s.last_successful_time)
        }
        None => None,
    };
    Ok(OpsObserved {
        pods,
        monitoring,
        last_backup,
    })
}
