//! The "kubelet" of the rollout scenarios, for the pods that kube-scheduler placed on kwok's
//! nodes and kwok reported Running and Ready. kwok hands out pod IPs from 127.1.0.0/16 (see
//! scripts/control-plane.sh), all loopback addresses here, so this loop can run each pod's
//! process on the pod's own IP and port, as a kubelet would run its container:
//!
//! - a router pod runs the real `deepseek-runtime route` on podIP:8080;
//! - a runtime pod runs a chat backend naming its revision (answering 500 when its image says
//!   `bad`) on podIP:port;
//! - a deleted pod's process keeps running for its preStop sleep, then stops;
//! - the routes ConfigMap reaches the routers' file only after `configmap_sync_delay()` (the
//!   kubelet's ConfigMap volume refresh), and each revision's Service URL resolves to the ready
//!   pods its selector picks (cluster DNS and kube-proxy).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepseek_operator::desired::router::{router_selector, routes_name, ROUTER_PORT, ROUTES_KEY};
use deepseek_operator::desired::security::ROUTER_ADMIN_PORT;
use deepseek_operator::reconcile::labels;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use super::{start_backend, Backend, NAME};

/// How long a changed routes ConfigMap takes to reach the routers' mounted file. A real
/// kubelet refreshes ConfigMap volumes on its sync period plus its cache TTL (up to a minute
/// or more); `DEEPSEEK_TEST_CONFIGMAP_SYNC_MS` sets it (default 20 s).
pub fn configmap_sync_delay() -> Duration {
    let ms = std::env::var("DEEPSEEK_TEST_CONFIGMAP_SYNC_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    Duration::from_millis(ms)
}

pub(super) enum Process {
    Router(Child, SocketAddr),
    Runtime(Backend),
}

impl Process {
    fn stop(self) {
        match self {
            Process::Router(mut c, _) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Process::Runtime(b) => b.task.abort(),
        }
    }
}

#[derive(Default)]
pub(super) struct Node {
    /// Running processes by pod name.
    pub running: BTreeMap<String, Process>,
    /// Pods being deleted: when their preStop sleep ends.
    stopping: BTreeMap<String, tokio::time::Instant>,
    /// Labels and URL of every pod with a process, for the terminating-endpoint fallback
    /// (kwok removes a deleted pod from the API at once; its process serves on until its
    /// preStop sleep ends, as a kubelet's would).
    endpoints: BTreeMap<String, (BTreeMap<String, String>, String)>,
}

impl Node {
    pub fn routers(&self) -> Vec<SocketAddr> {
        self.running
            .values()
            .filter_map(|p| match p {
                Process::Router(_, a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    pub fn stop_all(&mut self) {
        for (_, p) in std::mem::take(&mut self.running) {
            p.stop();
        }
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ip(p: &Pod) -> Option<std::net::IpAddr> {
    p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()
}

fn pre_stop_secs(p: &Pod) -> u64 {
    p.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.lifecycle.as_ref())
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .map(|s| s.seconds.max(0) as u64)
        .unwrap_or(0)
}

fn first_port(p: &Pod) -> Option<u16> {
    let c = p.spec.as_ref()?.containers.first()?;
    let port = c.ports.as_ref()?.first()?.container_port;
    u16::try_from(port).ok()
}

pub(super) async fn kubelet(
    client: kube::Client,
    ns: String,
    router_bin: PathBuf,
    node: Arc<Mutex<Node>>,
    routes_file: PathBuf,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client, &ns);
    let delay = configmap_sync_delay();
    // The ConfigMap data as the kubelet last synced it, and a newer one waiting for its turn.
    let mut synced: Option<String> = None;
    let mut pending: Option<(String, tokio::time::Instant)> = None;
    let mut written = String::new();
    let routers = router_selector(NAME);
    loop {
        let now = tokio::time::Instant::now();
        if let Ok(list) = pods.list(&ListParams::default()).await {
            let mut seen = BTreeSet::new();
            let Ok(mut n) = node.lock() else { return };
            for p in &list.items {
                let name = p.name_any();
                seen.insert(name.clone());
                if p.metadata.deletion_timestamp.is_some() {
                    n.stopping
                        .entry(name)
                        .or_insert(now + Duration::from_secs(pre_stop_secs(p)));
                    continue;
                }
                if n.running.contains_key(&name) || !ready(p) {
                    continue;
                }
                let Some(ip) = pod_ip(p) else { continue };
                let labels = p.labels();
                let is_router = routers.iter().all(|(k, v)| labels.get(k) == Some(v));
                if is_router {
                    if !routes_file.exists() {
                        continue;
                    }
                    let addr = SocketAddr::new(ip, ROUTER_PORT);
                    if let Ok(child) = Command::new(&router_bin)
                        .args(["route", "--config"])
                        .arg(&routes_file)
                        .args([
                            "--listen",
                            &addr.to_string(),
                            // Where the operator reads /admin/stats, as in the rendered pod.
                            "--admin-port",
                            &ROUTER_ADMIN_PORT.to_string(),
                            "--threads",
                            "2",
                            "--reload-ms",
                            "100",
                        ])
                        .stdout(Stdio::null())
                        .stderr(Stdio::inherit())
                        .spawn()
                    {
                        n.running.insert(name, Process::Router(child, addr));
                    }
                } else if let Some(revision) = labels.get(labels::REVISION) {
                    let image = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .and_then(|c| c.image.clone())
                        .unwrap_or_default();
                    let Some(port) = first_port(p) else { continue };
                    let addr = SocketAddr::new(ip, port);
                    if let Ok(b) = start_backend(revision.clone(), image.contains("bad"), addr) {
                        n.endpoints
                            .insert(name.clone(), (labels.clone(), format!("http://{addr}")));
                        n.running.insert(name, Process::Runtime(b));
                    }
                }
            }
            // A pod gone from the API without a deletion seen: stop now. Deleted ones stop
            // when their preStop sleep ends.
            let gone: Vec<String> = n
                .running
                .keys()
                .filter(|k| !seen.contains(*k) && !n.stopping.contains_key(*k))
                .cloned()
                .collect();
            for k in gone {
                n.stopping.insert(k, now);
            }
            let due: Vec<String> = n
                .stopping
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in due {
                n.stopping.remove(&k);
                n.endpoints.remove(&k);
                if let Some(p) = n.running.remove(&k) {
                    p.stop();
                }
            }
        }
        if let Ok(Some(cm)) = configmaps.get_opt(&routes_name(NAME)).await {
            let yaml = cm
                .data
                .as_ref()
                .and_then(|d| d.get(ROUTES_KEY))
                .cloned()
                .unwrap_or_default();
            if synced.is_none() {
                synced = Some(yaml);
            } else if synced.as_deref() != Some(yaml.as_str()) {
                match &pending {
                    Some((p, _)) if *p == yaml => {}
                    _ => pending = Some((yaml, now + delay)),
                }
            }
        }
        if let Some((yaml, at)) = pending.take() {
            if at <= now {
                synced = Some(yaml);
            } else {
                pending = Some((yaml, at));
            }
        }
        if let Some(yaml) = &synced {
            if let Some(local) = localize(yaml, &services, &pods, &node).await {
                if local != written {
                    let tmp = routes_file.with_extension("tmp");
                    if std::fs::write(&tmp, &local).is_ok()
                        && std::fs::rename(&tmp, &routes_file).is_ok()
                    {
                        written = local;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Endpoints of Service `svc`, as the EndpointSlice controller would list them: the pods its
/// selector picks, ready ones, else serving terminating ones (kube-proxy falls back to them),
/// at the target port. (The real EndpointSlice controller refuses the loopback pod IPs that
/// kwok hands out here, "may not be in the loopback range", so this reads the pods itself.)
async fn endpoints(
    services: &Api<Service>,
    pods: &Api<Pod>,
    node: &Arc<Mutex<Node>>,
    svc: &str,
) -> Vec<String> {
    let Ok(Some(service)) = services.get_opt(svc).await else {
        return Vec::new();
    };
    let spec = service.spec.unwrap_or_default();
    let Some(selector) = spec.selector.filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let target = spec
        .ports
        .unwrap_or_default()
        .first()
        .and_then(|p| p.target_port.clone());
    let lp = ListParams::default().labels(
        &selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    let Ok(list) = pods.list(&lp).await else {
        return Vec::new();
    };
    let mut ready_urls = Vec::new();
    let mut serving = Vec::new();
    for p in list.items {
        let Some(ip) = pod_ip(&p) else { continue };
        let port = match &target {
            Some(IntOrString::Int(n)) => Some(*n),
            Some(IntOrString::String(name)) => p
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.ports.as_ref())
                .and_then(|ports| ports.iter().find(|q| q.name.as_deref() == Some(name)))
                .map(|q| q.container_port),
            None => first_port(&p).map(i32::from),
        };
        let Some(port) = port else { continue };
        let url = format!("http://{ip}:{port}");
        if !ready(&p) {
            continue;
        }
        if p.metadata.deletion_timestamp.is_some() {
            serving.push(url);
        } else {
            ready_urls.push(url);
        }
    }
    if !ready_urls.is_empty() {
        return ready_urls;
    }
    // Terminating pods still serving (their preStop sleep): those kwok already removed.
    if let Ok(n) = node.lock() {
        for (name, (labels, url)) in &n.endpoints {
            let selected = selector.iter().all(|(k, v)| labels.get(k) == Some(v));
            if selected && n.stopping.contains_key(name) && !serving.contains(url) {
                serving.push(url.clone());
            }
        }
    }
    serving
}

/// The routes file with every revision's Service URL replaced by its endpoints (cluster DNS
/// and kube-proxy, played by the test). A Service without endpoints gets a closed port, so a
/// request routed there fails as it would through kube-proxy.
async fn localize(
    yaml: &str,
    services: &Api<Service>,
    pods: &Api<Pod>,
    node: &Arc<Mutex<Node>>,
) -> Option<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(yaml).ok()?;
    for rev in doc.get_mut("revisions")?.as_sequence_mut()? {
        let mut urls = Vec::new();
        for b in rev.get("backends")?.as_sequence()? {
            let url = b.as_str()?;
            let host = url.split("://").nth(1)?.split(['.', ':', '/']).next()?;
            urls.extend(endpoints(services, pods, node, host).await);
        }
        if urls.is_empty() {
            urls.push("http://127.0.0.1:9".to_string());
        }
        rev["backends"] =
            serde_yaml::Value::Sequence(urls.into_iter().map(serde_yaml::Value::from).collect());
    }
    serde_yaml::to_string(&doc).ok()
}
