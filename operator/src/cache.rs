//! The watch caches the reconciler reads instead of listing: one reflector per watched kind,
//! shared with the Controller (the same watch both triggers reconciles and fills the store), so
//! a steady-state reconcile makes no list or get call. Stores hold objects without
//! `managedFields` (and nodes without spec and status): only what the reconciler reads.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::desired::deployment::ZONE_LABEL;
use crate::desired::ChildKind;

/// How long a reconcile waits for the node cache's first list before reading zones from it.
pub const NODE_CACHE_WAIT: Duration = Duration::from_secs(5);

/// The read side of every cache.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub config_maps: Store<ConfigMap>,
    pub pdbs: Store<PodDisruptionBudget>,
    pub cron_jobs: Store<CronJob>,
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
}

/// One child as prune sees it: name and controller owner uids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedChild {
    pub name: String,
    pub controller_uid: Option<String>,
}

/// Whether `obj` lives in `ns` and carries every label of `selector`.
pub fn selected<K: Resource>(obj: &K, ns: &str, selector: &BTreeMap<String, String>) -> bool {
    obj.meta().namespace.as_deref() == Some(ns)
        && selector.iter().all(|(k, v)| obj.labels().get(k) == Some(v))
}

fn matching<K>(store: &Store<K>, ns: &str, selector: &BTreeMap<String, String>) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let mut out = store.state_filter(|o| selected(o, ns, selector));
    // Stores are hash maps: sort so everything built from them is deterministic.
    out.sort_by_key(|o| o.name_any());
    out
}

fn children_of<K>(
    store: &Store<K>,
    ns: &str,
    selector: &BTreeMap<String, String>,
) -> Vec<CachedChild>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    matching(store, ns, selector)
        .iter()
        .map(|o| CachedChild {
            name: o.name_any(),
            controller_uid: o
                .owner_references()
                .iter()
                .find(|r| r.controller == Some(true))
                .map(|r| r.uid.clone()),
        })
        .collect()
}

impl Stores {
    /// Waits for the first list of every child cache (the node cache is awaited where read).
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.deployments.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.config_maps.wait_until_ready().await?;
        self.pdbs.wait_until_ready().await?;
        self.cron_jobs.wait_until_ready().await?;
        self.pods.wait_until_ready().await
    }

    pub fn deployments(&self, ns: &str, sel: &BTreeMap<String, String>) -> Vec<Arc<Deployment>> {
        matching(&self.deployments, ns, sel)
    }

    pub fn pods(&self, ns: &str, sel: &BTreeMap<String, String>) -> Vec<Arc<Pod>> {
        matching(&self.pods, ns, sel)
    }

    pub fn cron_job(&self, ns: &str, name: &str) -> Option<Arc<CronJob>> {
        self.cron_jobs.get(&ObjectRef::new(name).within(ns))
    }

    /// The zone label of a node, once the node cache has listed (bounded wait).
    pub async fn node_zone(&self, node: &str) -> Option<String> {
        let _ = tokio::time::timeout(NODE_CACHE_WAIT, self.nodes.wait_until_ready()).await;
        self.nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
    }

    /// Children of `kind` selected by `sel` in `ns`; `None` for kinds that are not cached.
    pub fn children(
        &self,
        kind: ChildKind,
        ns: &str,
        sel: &BTreeMap<String, String>,
    ) -> Option<Vec<CachedChild>> {
        Some(match kind {
            ChildKind::Deployment => children_of(&self.deployments, ns, sel),
            ChildKind::Service => children_of(&self.services, ns, sel),
            ChildKind::ConfigMap => children_of(&self.config_maps, ns, sel),
            ChildKind::PodDisruptionBudget => children_of(&self.pdbs, ns, sel),
            ChildKind::CronJob => children_of(&self.cron_jobs, ns, sel),
            ChildKind::PrometheusRule | ChildKind::PodMonitor | ChildKind::NetworkPolicy => {
                return None
            }
        })
    }

    /// Whether a child of a cached kind is present (`None` for kinds that are not cached).
    pub fn has(&self, kind: ChildKind, ns: &str, name: &str) -> Option<bool> {
        Some(match kind {
            ChildKind::Deployment => self
                .deployments
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            ChildKind::Service => self
                .services
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            ChildKind::ConfigMap => self
                .config_maps
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            ChildKind::PodDisruptionBudget => {
                self.pdbs.get(&ObjectRef::new(name).within(ns)).is_some()
            }
            ChildKind::CronJob => self
                .cron_jobs
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
            ChildKind::PrometheusRule | ChildKind::PodMonitor | ChildKind::NetworkPolicy => {
                return None
            }
        })
    }
}

/// A reflector over `api`: the store to read and the stream that fills it (and, given to the
/// Controller, triggers reconciles). `strip` drops what the reconciler never reads.
pub fn reflect<K>(
    api: Api<K>,
    cfg: watcher::Config,
    strip: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, cfg)
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            strip(o);
        })
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// Nodes are only read for their zone label.
pub fn strip_node(node: &mut Node) {
    node.spec = None;
    node.status = None;
}

/// Nothing to drop beyond `managedFields`.
pub fn keep_all<K>(_: &mut K) {}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(ns: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some(ns.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn a_cached_object_is_selected_by_namespace_and_every_label() {
        let sel = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert!(selected(&pod("ns", &[("a", "1"), ("b", "2")]), "ns", &sel));
        assert!(!selected(&pod("other", &[("a", "1")]), "ns", &sel));
        assert!(!selected(&pod("ns", &[("a", "2")]), "ns", &sel));
        assert!(!selected(&pod("ns", &[]), "ns", &sel));
    }

    #[test]
    fn monitoring_kinds_are_not_cached() {
        assert_eq!(
            ChildKind::from_kind("PodMonitor"),
            Some(ChildKind::PodMonitor)
        );
        assert_eq!(ChildKind::from_kind("Secret"), None);
    }
}
