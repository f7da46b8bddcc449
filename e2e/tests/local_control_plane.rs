//! The chart, the examples and kubectl against the local control plane that `make test` starts
//! (scripts/control-plane.sh: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//! kwok GPU nodes in three zones). `helm install` of charts/deepseek-operator through the Helm
//! SDK; the operator run out of cluster with the token of the chart's ServiceAccount, so the
//! real RBAC authorizer judges the chart's rules, cluster-wide and in `watchNamespace` mode;
//! every example applied with `kubectl apply`, shown by `kubectl get dsd`, waited for with
//! `kubectl wait`, rolled (a canary step in `kubectl get`), deleted with nothing left behind;
//! a node drained through the eviction API.
//!
//! Needs DEEPSEEK_CONTROL_PLANE (the ServiceAccount tokens); skips without it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use deepseek_e2e::{helm, repo};
use deepseek_operator::controller::{run_with, RunConfig, RunOptions};
use deepseek_operator::leader::LeaseTiming;
use deepseek_operator::metrics::Metrics;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::oneshot;

type TestResult = anyhow::Result<()>;

const WAIT: Duration = Duration::from_secs(120);
/// The chart's release; its ClusterRole and ClusterRoleBinding are cluster-wide, so the tests
/// of this file install it one at a time (SERIAL).
const RELEASE: &str = "deepseek-operator";
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn control_plane() -> Option<PathBuf> {
    match std::env::var_os("DEEPSEEK_CONTROL_PLANE") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            println!(
                "skipping: DEEPSEEK_CONTROL_PLANE unset (run through `make test`, or \
                 `eval $(scripts/control-plane.sh up)`)"
            );
            None
        }
    }
}

/// `kubectl ARGS`; (success, stdout, stderr), printed for the test log.
fn kubectl(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    let r = (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    println!("$ kubectl {}\n{}{}", args.join(" "), r.1, r.2);
    Ok(r)
}

fn kubectl_ok(args: &[&str]) -> anyhow::Result<String> {
    let (ok, out, err) = kubectl(args)?;
    anyhow::ensure!(ok, "kubectl {} failed: {err}", args.join(" "));
    Ok(out)
}

async fn wait_until(what: &str, mut probe: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !probe() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

fn helm_op(op: Value) -> anyhow::Result<Value> {
    let result = helm::run(vec![op])?.remove(0);
    anyhow::ensure!(result["ok"] == true, "helm: {}", result["error"]);
    Ok(result)
}

/// `helm install` of the chart as `release` in `namespace` (waits for its resources).
fn helm_install(release: &str, namespace: &str, values: Value) -> anyhow::Result<()> {
    helm_op(json!({"op": "install", "name": release, "namespace": namespace, "values": values}))?;
    Ok(())
}

fn helm_uninstall(release: &str, namespace: &str) {
    let _ = helm_op(json!({"op": "uninstall", "name": release, "namespace": namespace}));
}

/// A client that authenticates as ServiceAccount `namespace/name` (the control plane's token
/// file gives it a token), as the operator pod would in the cluster.
async fn service_account_client(
    dir: &std::path::Path,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Client> {
    let token = std::fs::read_to_string(dir.join("tokens").join(format!("{namespace}.{name}")))?;
    let mut config = kube::Config::infer().await?;
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.trim().to_string().into()),
        ..Default::default()
    };
    Ok(Client::try_from(config)?)
}

struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    /// The operator out of cluster, configured as the chart configures its pod.
    fn start(client: Client, lease_namespace: &str, watch: Option<&str>) -> anyhow::Result<Self> {
        let cfg = RunConfig {
            metrics_addr: ([127, 0, 0, 1], 0).into(),
            leader_election: true,
            lease_name: RELEASE.into(),
            lease_namespace: lease_namespace.into(),
            identity: "e2e-operator".into(),
            watch_namespace: watch.map(str::to_string),
            ..RunConfig::default()
        };
        let opts = RunOptions {
            metrics: Metrics::new()?,
            lease_timing: LeaseTiming::default(),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run_with(client, cfg, opts, async move {
                let _ = rx.await;
            })
            .await
        });
        Ok(Self {
            stop: Some(tx),
            task,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task).await???;
        Ok(())
    }
}

/// The examples' DeepSeekDeployment files (examples/*.yaml) and their names.
fn example_files() -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo::path("examples"))? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&p)?;
            let v: Value = serde_yaml::from_str(&text)?;
            out.push((
                p,
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    out.sort();
    Ok(out)
}

fn create_namespace(ns: &str) -> anyhow::Result<()> {
    let (ok, _, err) = kubectl(&["create", "namespace", ns])?;
    anyhow::ensure!(ok || err.contains("AlreadyExists"), "{err}");
    Ok(())
}

/// The Secrets the examples reference (the examples document them but do not ship them).
fn example_secrets(ns: &str) -> anyhow::Result<()> {
    for (name, key) in [
        ("chat-jwt", "secret"),
        ("model-store-credentials", "AWS_ACCESS_KEY_ID"),
    ] {
        let (ok, _, err) = kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            "-n",
            ns,
            &format!("--from-literal={key}=c2VjcmV0"),
        ])?;
        anyhow::ensure!(ok || err.contains("already exists"), "{err}");
    }
    Ok(())
}

fn nothing_left(ns: &str) -> anyhow::Result<bool> {
    let out = kubectl_ok(&[
        "get",
        "deployments,replicasets,pods,services,configmaps,poddisruptionbudgets,cronjobs,dsd",
        "-n",
        ns,
        "-o",
        "name",
    ])?;
    // kube-root-ca.crt is the namespace's own (published by the controller-manager).
    Ok(out
        .lines()
        .all(|l| l.trim().is_empty() || l == "configmap/kube-root-ca.crt"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_then_every_example_applied_ready_rolled_and_deleted_with_kubectl(
) -> TestResult {
    let Some(dir) = control_plane() else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    // The namespace examples/multi-zone.yaml and safetensors.yaml name; the others take it.
    let ns = "inference";
    helm_uninstall(RELEASE, "deepseek-system"); // left over by a failed run
    helm_install(RELEASE, "deepseek-system", json!({}))?;
    let client = service_account_client(&dir, "deepseek-system", "deepseek-operator").await?;
    // Cluster-wide mode: the chart's ClusterRoleBinding.
    let op = Operator::start(client, "deepseek-system", None)?;
    create_namespace(ns)?;
    example_secrets(ns)?;
    let examples = example_files()?;
    assert!(examples.len() >= 5, "{examples:?}");
    for (file, _) in &examples {
        kubectl_ok(&["apply", "-n", ns, "-f", &file.to_string_lossy()])?;
    }
    kubectl_ok(&[
        "apply",
        "-n",
        ns,
        "-f",
        &repo::path("examples/support/model-files.yaml").to_string_lossy(),
    ])?;
    let table = kubectl_ok(&["get", "dsd", "-n", ns])?;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "MODEL", "READY", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "AGE"]
    );
    let wide = kubectl_ok(&["get", "dsd", "-n", ns, "-o", "wide"])?;
    assert!(
        wide.lines().next().unwrap_or_default().contains("GPUS"),
        "{wide}"
    );
    for (_, name) in &examples {
        kubectl_ok(&[
            "wait",
            "-n",
            ns,
            "--for=condition=Ready",
            &format!("dsd/{name}"),
            "--timeout=180s",
        ])?;
    }
    let table = kubectl_ok(&["get", "dsd", "-n", ns])?;
    for (_, name) in &examples {
        let row = table
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_default();
        assert!(row.contains("Healthy"), "{name}: {row}");
    }
    // A new image on the canary example: its first step shows in `kubectl get`.
    kubectl_ok(&[
        "patch",
        "dsd",
        "chat",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"runtime":{"image":"ghcr.io/example/deepseek-runtime:canary"}}}"#,
    ])?;
    wait_until("the canary's first step in kubectl get", || {
        kubectl(&["get", "dsd", "chat", "-n", ns, "--no-headers"])
            .map(|(_, out, _)| {
                let cols: Vec<&str> = out.split_whitespace().collect();
                // NAME MODEL READY PHASE STABLE CANARY WEIGHT STEP AGE
                cols.len() == 9 && cols[6] == "10" && cols[7] == "1/3"
            })
            .unwrap_or(false)
    })
    .await?;
    for (file, _) in &examples {
        kubectl_ok(&[
            "delete",
            "-n",
            ns,
            "-f",
            &file.to_string_lossy(),
            "--wait=true",
            "--timeout=120s",
        ])?;
    }
    kubectl_ok(&[
        "delete",
        "-n",
        ns,
        "-f",
        &repo::path("examples/support/model-files.yaml").to_string_lossy(),
    ])?;
    wait_until("nothing left behind by the examples", || {
        nothing_left(ns).unwrap_or(false)
    })
    .await?;
    op.stop().await?;
    let _ = kubectl(&["delete", "namespace", ns, "--wait=false"]);
    helm_uninstall(RELEASE, "deepseek-system");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_namespace_mode_runs_with_the_charts_namespaced_binding() -> TestResult {
    let Some(dir) = control_plane() else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    let ns = "e2e-watched";
    create_namespace(ns)?;
    helm_uninstall(RELEASE, "deepseek-watch"); // left over by a failed run
    helm_install(RELEASE, "deepseek-watch", json!({"watchNamespace": ns}))?;
    let client = service_account_client(&dir, "deepseek-watch", "deepseek-operator").await?;
    let op = Operator::start(client, "deepseek-watch", Some(ns))?;
    kubectl_ok(&[
        "apply",
        "-n",
        ns,
        "-f",
        &repo::path("examples/cpu-smollm2.yaml").to_string_lossy(),
    ])?;
    kubectl_ok(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        "dsd/smollm2",
        "--timeout=180s",
    ])?;
    // The chart grants nothing outside the watched namespace.
    let (allowed, _, _) = kubectl(&[
        "auth",
        "can-i",
        "list",
        "deployments",
        "-n",
        "default",
        "--as=system:serviceaccount:deepseek-watch:deepseek-operator",
    ])?;
    assert!(
        !allowed,
        "watchNamespace mode may not touch other namespaces"
    );
    kubectl_ok(&[
        "delete",
        "-n",
        ns,
        "dsd/smollm2",
        "--wait=true",
        "--timeout=120s",
    ])?;
    wait_until("nothing left behind", || nothing_left(ns).unwrap_or(false)).await?;
    op.stop().await?;
    let _ = kubectl(&["delete", "namespace", ns, "--wait=false"]);
    helm_uninstall(RELEASE, "deepseek-watch");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drains_through_the_eviction_api_with_zones_on() -> TestResult {
    let Some(dir) = control_plane() else {
        return Ok(());
    };
    let _serial = SERIAL.lock().await;
    let ns = "e2e-drain";
    create_namespace(ns)?;
    example_secrets(ns)?;
    let client = service_account_client(&dir, "deepseek-system", "deepseek-operator").await?;
    helm_uninstall(RELEASE, "deepseek-system"); // left over by a failed run
    helm_install(RELEASE, "deepseek-system", json!({}))?;
    let op = Operator::start(client, "deepseek-system", Some(ns))?;
    // The example names its own namespace; this test uses one of its own.
    let text = repo::read("examples/multi-zone.yaml")?.replace("namespace: inference", "");
    let file = std::env::temp_dir().join(format!("multi-zone-{}.yaml", std::process::id()));
    std::fs::write(&file, text)?;
    kubectl_ok(&["apply", "-n", ns, "-f", &file.to_string_lossy()])?;
    kubectl_ok(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        "dsd/deepseek-coder",
        "--timeout=180s",
    ])?;
    let drained = kubectl(&[
        "drain",
        "gpu-node-a",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--pod-selector=app.kubernetes.io/managed-by=deepseek-operator",
        "--timeout=90s",
    ]);
    let _ = kubectl(&["uncordon", "gpu-node-a"]);
    let (ok, _, err) = drained?;
    assert!(ok, "kubectl drain failed: {err}");
    op.stop().await?;
    let _ = kubectl(&["delete", "namespace", ns, "--wait=false"]);
    helm_uninstall(RELEASE, "deepseek-system");
    Ok(())
}
