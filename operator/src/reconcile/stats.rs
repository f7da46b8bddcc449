//! Where canary analysis gets its figures: every ready router pod's `/admin/stats` (router
//! contract), summed. Behind [`StatsSource`] so tests can substitute a source; the default
//! reads the pods the router Deployment runs, at their IP and `http` container port, which
//! in tests are router processes on 127.0.0.1 registered as pods.

use std::time::Duration;

use deepseek_crds::DeepSeekDeployment;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};

use crate::desired::router::{router_selector, ROUTER_PORT};
use crate::desired::security::ADMIN_PORT_NAME;
use crate::rollout::analysis::{self, Stats};

/// Why the routers' figures could not be read (the analysis then waits).
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("listing router pods: {0}")]
    Kube(#[from] kube::Error),
    #[error("no ready router pod")]
    NoRouterPods,
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: unexpected body: {source}")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A source of the routers' cumulative per-revision figures, summed over router pods.
pub trait StatsSource: Send + Sync {
    fn snapshot<'a>(
        &'a self,
        dsd: &'a DeepSeekDeployment,
    ) -> BoxFuture<'a, Result<Stats, StatsError>>;

    /// The `routesGeneration` each ready router reports serving (`None`: a router that
    /// predates the field). A source without routers reports none.
    fn routes_generations<'a>(
        &'a self,
        _dsd: &'a DeepSeekDeployment,
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, StatsError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Reads `/admin/stats` of every ready router pod of the resource.
pub struct RouterPods {
    client: Client,
    http: reqwest::Client,
    /// The pod watch cache, when a Controller runs: then router pods are never listed.
    pods: Option<Store<Pod>>,
}

/// A router that does not answer within this is counted as unavailable.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(3);

impl RouterPods {
    pub fn new(client: Client, pods: Option<Store<Pod>>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(STATS_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { client, http, pods }
    }

    async fn read(&self, dsd: &DeepSeekDeployment) -> Result<Stats, StatsError> {
        let urls = self.urls(dsd).await?;
        if urls.is_empty() {
            return Err(StatsError::NoRouterPods);
        }
        let mut total = Stats::new();
        // Every pod must answer: a partial sum would look like a counter reset.
        for url in urls {
            let body = self.fetch(&url).await?;
            let stats = analysis::parse_admin_stats(&body).map_err(|source| StatsError::Parse {
                url: url.clone(),
                source,
            })?;
            analysis::add(&mut total, stats);
        }
        Ok(total)
    }

    async fn generations(
        &self,
        dsd: &DeepSeekDeployment,
    ) -> Result<Vec<Option<String>>, StatsError> {
        let mut out = Vec::new();
        for url in self.urls(dsd).await? {
            let body = self.fetch(&url).await?;
            let parsed: RoutesReport =
                serde_json::from_slice(&body).map_err(|source| StatsError::Parse {
                    url: url.clone(),
                    source,
                })?;
            out.push(parsed.routes_generation);
        }
        Ok(out)
    }

    /// `/admin/stats` of every ready router pod, from the pod cache when there is one.
    async fn urls(&self, dsd: &DeepSeekDeployment) -> Result<Vec<String>, StatsError> {
        let ns = dsd.namespace().unwrap_or_default();
        let labels = router_selector(&dsd.name_any());
        let urls: Vec<String> = match &self.pods {
            Some(store) => store
                .state()
                .iter()
                .filter(|p| crate::cache::selected(p.as_ref(), &ns, &labels))
                .filter_map(|p| stats_url(p))
                .collect(),
            None => {
                let selector = labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let pods = Api::<Pod>::namespaced(self.client.clone(), &ns)
                    .list(&ListParams::default().labels(&selector))
                    .await?;
                pods.items.iter().filter_map(stats_url).collect()
            }
        };
        Ok(urls)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, StatsError> {
        let http = |source| StatsError::Http {
            url: url.to_string(),
            source,
        };
        let response = self.http.get(url).send().await.map_err(http)?;
        if !response.status().is_success() {
            return Err(StatsError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        Ok(response.bytes().await.map_err(http)?.to_vec())
    }
}

/// The part of `/admin/stats` the drain gate reads (router contract: `routesGeneration`, the
/// `generation` of the routes file the router has loaded).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoutesReport {
    #[serde(default)]
    routes_generation: Option<String>,
}

impl StatsSource for RouterPods {
    fn snapshot<'a>(
        &'a self,
        dsd: &'a DeepSeekDeployment,
    ) -> BoxFuture<'a, Result<Stats, StatsError>> {
        Box::pin(self.read(dsd))
    }

    fn routes_generations<'a>(
        &'a self,
        dsd: &'a DeepSeekDeployment,
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, StatsError>> {
        Box::pin(self.generations(dsd))
    }
}

/// `http://IP:PORT/admin/stats` of a ready, running router pod: its `admin` container port
/// (the public one has no stats), or `http` for a router from before the admin port.
pub fn stats_url(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ip = status.pod_ip.as_ref()?;
    let port_named = |name: &str| {
        pod.spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
    };
    let port = port_named(ADMIN_PORT_NAME)
        .or_else(|| port_named("http"))
        .unwrap_or(i32::from(ROUTER_PORT));
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.clone()
    };
    Some(format!("http://{host}:{port}/admin/stats"))
}
