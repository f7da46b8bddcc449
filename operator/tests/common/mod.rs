//! Shared harness for the controller scenarios on the real control plane that
//! `scripts/control-plane.sh up` starts (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, kwok): `KUBECONFIG` points at it. Each test gets its own namespace, so the
//! tests stay independent and run in parallel; the CRD is installed (server-side apply) by the
//! first test that needs it and compiled by the real server (schema, defaults, CEL).
//!
//! The operator under test runs in process with a client whose requests are recorded (see
//! `recorder`), so a test can check which calls it made and the server's answers.

#![allow(dead_code)]

pub mod operator;
pub mod recorder;

pub use operator::*;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use deepseek_crds::DeepSeekDeployment;
use deepseek_operator::reconcile::labels;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Config, Resource, ResourceExt};
use recorder::Recorder;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub const SHA: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Every wait in these tests is bounded by this (a real control plane on a loaded 2-core CI
/// machine: scheduling, kwok and the controllers each take a moment).
pub const WAIT: Duration = Duration::from_secs(60);
/// Field manager of the objects the tests write.
pub const TEST_MANAGER: &str = "operator-tests";

pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

pub fn dsd(name: &str) -> Value {
    json!({
        "apiVersion": deepseek_crds::API_VERSION,
        "kind": deepseek_crds::KIND,
        "metadata": {"name": name},
        "spec": {
            "model": {
                "name": "smollm2",
                "source": {"url": {"url": "http://models.local/smollm2"}},
                "files": [{"path": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": SHA}],
                "format": "gguf"
            },
            "replicas": 1
        }
    })
}

/// The kubeconfig of the local control plane; a clear failure when it is not running.
pub async fn admin_config() -> anyhow::Result<Config> {
    if std::env::var_os("KUBECONFIG").is_none() {
        anyhow::bail!(
            "KUBECONFIG is not set: these tests run against the local control plane; \
             start it with `eval $(scripts/control-plane.sh up)` (make test does)"
        );
    }
    Ok(Config::infer().await?)
}

/// Directory of the running control plane's state (tokens, kubeconfig).
pub fn control_plane_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("DEEPSEEK_CONTROL_PLANE") {
        return Ok(PathBuf::from(d));
    }
    let kc =
        std::env::var_os("KUBECONFIG").ok_or_else(|| anyhow::anyhow!("KUBECONFIG is not set"))?;
    Ok(PathBuf::from(kc)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default())
}

/// The bearer token the control plane's token file gives ServiceAccount `namespace/name`.
pub fn service_account_token(namespace: &str, name: &str) -> anyhow::Result<String> {
    let path = control_plane_dir()?
        .join("tokens")
        .join(format!("{namespace}.{name}"));
    Ok(std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .trim()
        .to_string())
}

static CRD: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Server-side applies `crds/deepseekdeployments.yaml` and waits until it is Established.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    CRD.get_or_try_init(|| async {
        let text = std::fs::read_to_string(repo_root().join("crds/deepseekdeployments.yaml"))?;
        let crd: Value = serde_yaml::from_str(&text)?;
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let api: Api<CustomResourceDefinition> = Api::all(client.clone());
        api.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        eventually("the CRD Established", || async {
            let c = api.get(&name).await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await
    })
    .await?;
    Ok(())
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's view of the control plane: its own namespace, an admin client for the test's
/// own calls, and the recorder shared by every operator the test starts.
pub struct Cluster {
    pub ns: String,
    pub config: Config,
    client: Client,
    pub recorder: Recorder,
}

impl Cluster {
    /// Installs the CRD (once) and creates a fresh namespace for this test.
    pub async fn new() -> anyhow::Result<Self> {
        let config = admin_config().await?;
        let client = Client::try_from(config.clone())?;
        install_crd(&client).await?;
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .rsplit("::")
            .next()
            .unwrap_or("test")
            .replace('_', "-");
        let mut prefix: String = test.chars().take(40).collect();
        prefix = prefix.trim_end_matches('-').to_string();
        let ns = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": ns, "labels": {"deepseek-k8s/test": "true"}}}),
            )?,
        )
        .await?;
        // Pods need the namespace's default ServiceAccount (the controller-manager makes it).
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &ns);
        eventually("the default ServiceAccount", || async {
            sa.get_opt("default").await.ok().flatten()
        })
        .await?;
        Ok(Self {
            ns,
            config,
            client,
            recorder: Recorder::default(),
        })
    }

    /// The test's own admin client (not recorded).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An admin client whose requests go to `self.recorder`.
    pub fn recorded_client(&self) -> anyhow::Result<Client> {
        self.recorded_client_with(self.config.clone())
    }

    /// A recorded client authenticating with `config` (e.g. a ServiceAccount token).
    pub fn recorded_client_with(&self, mut config: Config) -> anyhow::Result<Client> {
        config.default_namespace = self.ns.clone();
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&self.recorder)
            .build())
    }

    /// The admin config with the token of ServiceAccount `namespace/name` instead.
    pub fn service_account_config(&self, namespace: &str, name: &str) -> anyhow::Result<Config> {
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(service_account_token(namespace, name)?.into()),
            ..Default::default()
        };
        Ok(config)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn get<K>(&self, name: &str) -> Option<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>().get_opt(name).await.ok().flatten()
    }

    pub async fn list<K>(&self) -> Vec<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// Creates any namespaced object (apiVersion/kind given) in the test namespace.
    pub async fn create_raw(&self, mut obj: Value) -> anyhow::Result<Value> {
        obj["metadata"]["namespace"] = json!(self.ns);
        let gvk: kube::api::TypeMeta = serde_json::from_value(obj.clone())?;
        let gvk = kube::api::GroupVersionKind::try_from(&gvk)?;
        let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &ar);
        let created = api
            .create(&PostParams::default(), &serde_json::from_value(obj)?)
            .await?;
        Ok(serde_json::to_value(created)?)
    }

    pub fn requests(&self) -> Vec<recorder::RequestRecord> {
        self.recorder.requests()
    }

    pub fn clear_requests(&self) {
        self.recorder.clear()
    }
}

impl Drop for Cluster {
    /// The namespace goes (the real namespace controller deletes what is in it); a test that
    /// failed leaves nothing running either, the control plane is thrown away after the run.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args(["delete", "namespace", &self.ns, "--wait=false"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

pub async fn create(cluster: &Cluster, body: Value) -> anyhow::Result<DeepSeekDeployment> {
    Ok(cluster
        .api::<DeepSeekDeployment>()
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?)
}

/// Polls `probe` every 100 ms until it yields `Some`, failing after WAIT with `what`.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(WAIT, what, probe).await
}

/// As `eventually`, failing after `wait`.
pub async fn eventually_within<T, F, Fut>(
    wait: Duration,
    what: &str,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {wait:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn condition(d: &DeepSeekDeployment, type_: &str) -> Option<(String, String, String)> {
    let c = d.status.as_ref()?.condition(type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub async fn get(cluster: &Cluster, name: &str) -> Option<DeepSeekDeployment> {
    cluster.get::<DeepSeekDeployment>(name).await
}

/// Runtime Deployments the operator created for `uid` (owned by it).
pub async fn owned_deployments(cluster: &Cluster, uid: &str) -> Vec<Deployment> {
    cluster
        .list::<Deployment>()
        .await
        .into_iter()
        .filter(|d| owned_by(d, uid))
        // The router Deployment carries no revision label.
        .filter(|d| d.labels().contains_key(labels::REVISION))
        .collect()
}

pub fn owned_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.owner_references().iter().any(|o| o.uid == uid)
}

/// Plain HTTP/1.0 GET, enough for the operator's own endpoints.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

/// Waits until the operator has been idle (no reconciliation started) for one second, so a
/// test can snapshot the request log without racing a reconcile already in flight.
pub async fn settle(op: &Operator) -> anyhow::Result<()> {
    let mut last = (op.reconciliations(), tokio::time::Instant::now());
    eventually("the operator to settle", || {
        let now = op.reconciliations();
        if now != last.0 {
            last = (now, tokio::time::Instant::now());
        }
        let quiet = last.1.elapsed() >= Duration::from_secs(1);
        async move { quiet.then_some(()) }
    })
    .await
}

pub type TestResult = anyhow::Result<()>;

pub fn revision(d: &Deployment) -> String {
    d.labels()
        .get(labels::REVISION)
        .cloned()
        .unwrap_or_default()
}

pub async fn patch_spec(cluster: &Cluster, name: &str, spec: Value) -> anyhow::Result<()> {
    cluster
        .api::<DeepSeekDeployment>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await?;
    Ok(())
}

pub async fn events_with_reason(cluster: &Cluster, reason: &str) -> Vec<Event> {
    cluster
        .list::<Event>()
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

pub async fn delete<K>(cluster: &Cluster, name: &str) -> anyhow::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    cluster
        .api::<K>()
        .delete(name, &DeleteParams::default())
        .await?;
    Ok(())
}

/// Runs `kubectl ARGS` against the control plane; (success, stdout, stderr).
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> anyhow::Result<(bool, String, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?
            .write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
