//! The whole path a platform team takes, on a real cluster with the two images loaded
//! (the CI workflow builds them and loads them into kind): install the CRD and the operator
//! from `deepseek-operator manifests`, apply the CPU SmolLM2 example, wait for Ready, chat
//! through a port-forward to the chat Service (plain and streamed), roll out a change, roll
//! back to the first revision.
//!
//! Skips (and passes) without a cluster, and without E2E_OPERATOR_IMAGE / E2E_RUNTIME_IMAGE
//! (images the cluster can run; on kind: `kind load docker-image`).

use std::process::Stdio;
use std::time::Duration;

use deepseek_crds::status::condition_types as ct;
use deepseek_crds::DeepSeekDeployment;
use deepseek_e2e::chat::{self, ChatRequest};
use deepseek_e2e::install::{apply_all, yaml_documents};
use deepseek_e2e::*;
use deepseek_operator::desired::manifests::{manifests, ManifestConfig};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

type TestResult = anyhow::Result<()>;

/// Model download, image start and first load on a CI runner's CPU.
const READY_WAIT: Duration = Duration::from_secs(15 * 60);
const MODEL: &str = "smollm2-135m-instruct";

fn images() -> Option<(String, String)> {
    match (
        std::env::var("E2E_OPERATOR_IMAGE"),
        std::env::var("E2E_RUNTIME_IMAGE"),
    ) {
        (Ok(op), Ok(rt)) if !op.is_empty() && !rt.is_empty() => Some((op, rt)),
        _ => {
            println!("skipping: set E2E_OPERATOR_IMAGE and E2E_RUNTIME_IMAGE to images the cluster can run");
            None
        }
    }
}

async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn install_operator(client: &Client, image: &str, runtime_image: &str) -> anyhow::Result<()> {
    let cfg = ManifestConfig {
        image: image.into(),
        runtime_image: runtime_image.into(),
        ..ManifestConfig::default()
    };
    apply_all(client, &manifests(&cfg)?, &cfg.namespace).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &cfg.namespace);
    wait_for("the operator Deployment available", READY_WAIT, || async {
        let d = deployments.get("deepseek-operator").await.ok()?;
        (d.status?.available_replicas? >= 1).then_some(())
    })
    .await
}

async fn ready_on(
    api: &Api<DeepSeekDeployment>,
    name: &str,
    hash: Option<&str>,
) -> anyhow::Result<String> {
    wait_for(&format!("{name} Ready"), READY_WAIT, || async {
        let d = api.get(name).await.ok()?;
        let st = d.status?;
        let ready = st.condition(ct::READY)?.status == "True";
        let stable = st.stable_revision?.hash;
        let serves_wanted = hash.is_none_or(|h| h == stable);
        (ready && st.canary_revision.is_none() && serves_wanted).then_some(stable)
    })
    .await
}

/// `kubectl port-forward` to the chat Service; killed when dropped.
struct PortForward(tokio::process::Child, u16);

async fn port_forward(ns: &str, service: &str) -> anyhow::Result<PortForward> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new("kubectl")
        .args([
            "-n",
            ns,
            "port-forward",
            &format!("svc/{service}"),
            &format!("{port}:80"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    wait_for("the port-forward", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await?;
    Ok(PortForward(child, port))
}

async fn chat_works(ns: &str) -> anyhow::Result<()> {
    let pf = port_forward(ns, "smollm2").await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let req = ChatRequest::user(
        &format!("http://127.0.0.1:{}", pf.1),
        MODEL,
        "Say hello in five words.",
    );
    let text = chat::complete(&http, &req).await?;
    assert!(!text.trim().is_empty(), "empty completion");
    let mut streamed = String::new();
    let (chunks, usage) = chat::stream(&http, &req, |d| streamed.push_str(d)).await?;
    assert!(
        chunks >= 2 && !streamed.is_empty(),
        "{chunks} chunks: {streamed:?}"
    );
    assert!(
        usage["completion_tokens"].as_u64().unwrap_or(0) >= 1,
        "{usage}"
    );
    drop(pf.0);
    Ok(())
}

#[tokio::test]
async fn install_serve_chat_roll_out_and_roll_back_the_cpu_example() -> TestResult {
    let Some(client) = cluster().await else {
        return Ok(());
    };
    let Some((operator_image, runtime_image)) = images() else {
        return Ok(());
    };
    install_operator(&client, &operator_image, &runtime_image).await?;
    let ns = namespace(&client, "dsd-suite").await?;
    let mut objects = yaml_documents("examples/support/model-files.yaml")?;
    objects.extend(yaml_documents("examples/cpu-smollm2.yaml")?);
    apply_all(&client, &objects, &ns).await?;
    let api: Api<DeepSeekDeployment> = Api::namespaced(client.clone(), &ns);
    let first = ready_on(&api, "smollm2", None).await?;
    chat_works(&ns).await?;

    // A runtime setting is part of the revision: a new revision rolls out and takes over.
    let pp = PatchParams::default();
    api.patch(
        "smollm2",
        &pp,
        &Patch::Merge(json!({"spec": {"runtime": {"maxBatchSize": 4}}})),
    )
    .await?;
    let second = wait_for("a new stable revision", READY_WAIT, || async {
        let st = api.get("smollm2").await.ok()?.status?;
        let hash = st.stable_revision?.hash;
        (hash != first).then_some(hash)
    })
    .await?;
    ready_on(&api, "smollm2", Some(&second)).await?;
    chat_works(&ns).await?;

    // Manual rollback to the first revision, from status.history.
    api.patch(
        "smollm2",
        &pp,
        &Patch::Merge(json!({"spec": {"rollout": {"rollbackTo": first}}})),
    )
    .await?;
    ready_on(&api, "smollm2", Some(&first)).await?;
    chat_works(&ns).await?;
    cleanup(&client, &ns).await;
    // The operator watches every namespace: remove it so later suites run their own.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "deepseek-system");
    deployments
        .delete("deepseek-operator", &kube::api::DeleteParams::background())
        .await?;
    Ok(())
}
