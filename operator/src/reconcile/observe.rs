//! Reads what exists for one DeepSeekDeployment: its Deployments (per revision) and pods
//! (readiness, model-fetch init container results). Read-only; the pure interpretation of a
//! pod lives in `pod_observation`.

use std::sync::Arc;

use deepseek_crds::DeepSeekDeployment;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, ListParams};
use kube::ResourceExt;

use crate::context::Context;
use crate::error::Result;
use crate::reconcile::labels;
use crate::status::{DeploymentObservation, InitState, Observed, PodObservation};

/// From the watch caches when the Controller runs (no API call), else listed.
pub async fn observe(ctx: &Context, dsd: &DeepSeekDeployment) -> Result<Observed> {
    let ns = dsd.namespace().unwrap_or_default();
    let uid = dsd.uid().unwrap_or_default();
    let name = dsd.name_any();
    let (deployments, pods): (Vec<Arc<Deployment>>, Vec<Arc<Pod>>) = match &ctx.stores {
        Some(stores) => {
            let sel = labels::selector_map(&name);
            (stores.deployments(&ns, &sel), stores.pods(&ns, &sel))
        }
        None => {
            let lp = ListParams::default().labels(&labels::selector_for(&name));
            let client = &ctx.client;
            let deployments = Api::<Deployment>::namespaced(client.clone(), &ns)
                .list(&lp)
                .await?;
            let pods = Api::<Pod>::namespaced(client.clone(), &ns)
                .list(&lp)
                .await?;
            (
                deployments.items.into_iter().map(Arc::new).collect(),
                pods.items.into_iter().map(Arc::new).collect(),
            )
        }
    };
    Ok(Observed {
        deployments: deployments
            .iter()
            .filter(|d| d.owner_references().iter().any(|o| o.uid == uid))
            .map(|d| deployment_observation(d))
            .collect(),
        pods: pods.iter().map(|p| pod_observation(p)).collect(),
    })
}

fn deployment_observation(d: &Deployment) -> DeploymentObservation {
    let status = d.status.clone().unwrap_or_default();
    DeploymentObservation {
        name: d.name_any(),
        revision: d.labels().get(labels::REVISION).cloned(),
        replicas: d.spec.replicas.unwrap_or(1),
        current_replicas: status.replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
    }
}

/// Interprets one pod: ready condition, and the init containers' outcome (a terminated
/// non-zero exit, also as the last state of a crash-looping container, is a failure carrying
/// the container's reason and termination message).
pub fn pod_observation(pod: &Pod) -> PodObservation {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let inits = status.init_container_statuses.unwrap_or_default();
    let failure = inits.iter().find_map(init_failure);
    let init = match failure {
        Some(f) => f,
        None if ready || (!inits.is_empty() && inits.iter().all(succeeded)) => InitState::Succeeded,
        None => InitState::Running,
    };
    let config_error = status
        .container_statuses
        .iter()
        .flatten()
        .chain(&inits)
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            (waiting.reason.as_deref() == Some("CreateContainerConfigError")).then(|| {
                let message = waiting.message.clone().unwrap_or_default();
                format!("pod {}: {message}", pod.name_any())
            })
        });
    PodObservation {
        name: pod.name_any(),
        revision: pod.labels().get(labels::REVISION).cloned(),
        ready,
        init,
        config_error,
    }
}

fn succeeded(c: &ContainerStatus) -> bool {
    c.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

fn init_failure(c: &ContainerStatus) -> Option<InitState> {
    let state = c.state.clone().unwrap_or_default();
    let crash_looping =
        state.waiting.as_ref().and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff");
    let terminated = state.terminated.filter(|t| t.exit_code != 0).or_else(|| {
        c.last_state
            .clone()
            .and_then(|l| l.terminated)
            .filter(|t| t.exit_code != 0)
    });
    let t = terminated?;
    let reason = match (t.reason, crash_looping) {
        (_, true) => "CrashLoopBackOff".to_string(),
        (Some(r), false) => r,
        (None, false) => "Error".to_string(),
    };
    let message = t
        .message
        .unwrap_or_else(|| format!("exit code {}", t.exit_code));
    Some(InitState::Failed {
        container: c.name.clone(),
        reason,
        message: message.trim().to_string(),
    })
}

/// Every Secret name the spec points at, with the field path naming it.
pub fn secret_refs(dsd: &DeepSeekDeployment) -> Vec<(String, String)> {
    let spec = &dsd.spec;
    let mut out = Vec::new();
    if let Some(s) = spec
        .model
        .source
        .hugging_face
        .as_ref()
        .and_then(|h| h.secret_ref.as_ref())
    {
        out.push((
            "spec.model.source.huggingFace.secretRef.name".to_string(),
            s.name.clone(),
        ));
    }
    if let Some(s) = spec
        .model
        .source
        .s3
        .as_ref()
        .and_then(|h| h.secret_ref.as_ref())
    {
        out.push((
            "spec.model.source.s3.secretRef.name".to_string(),
            s.name.clone(),
        ));
    }
    if let Some(a) = &spec.auth {
        for (_, flag, r) in a.files() {
            let field = match flag {
                "--jwt-secret-file" => "jwtSecretRef",
                "--jwt-public-key-file" => "jwtPublicKeyRef",
                "--jwks-file" => "jwksRef",
                _ => "apiKeysRef",
            };
            out.push((format!("spec.auth.{field}.name"), r.name.clone()));
        }
    }
    if let Some(r) = spec.rate_limit.as_ref().and_then(|r| r.redis.as_ref()) {
        out.push((
            "spec.rateLimit.redis.urlSecretRef.name".to_string(),
            r.url_secret_ref.name.clone(),
        ));
    }
    if let Some(t) = &spec.tls {
        out.push(("spec.tls.secretName".to_string(), t.secret_name.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "labels": {labels::REVISION: "abc"}}, "status": status}))
            .unwrap_or_default()
    }

    #[test]
    fn a_non_zero_init_exit_is_a_failure_with_the_pods_message() {
        let p = pod(
            json!({"initContainerStatuses": [{"name": "fetch", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error",
            "message": "sha256 mismatch for model.gguf\n"}}}]}),
        );
        let obs = pod_observation(&p);
        assert_eq!(
            obs.init,
            InitState::Failed {
                container: "fetch".into(),
                reason: "Error".into(),
                message: "sha256 mismatch for model.gguf".into()
            }
        );
        assert_eq!(obs.revision.as_deref(), Some("abc"));
    }

    #[test]
    fn crash_looping_init_reports_its_last_termination() {
        let p = pod(
            json!({"initContainerStatuses": [{"name": "fetch", "image": "x", "imageID": "", "ready": false,
            "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "message": "404 from https://x/model.gguf"}}}]}),
        );
        assert!(
            matches!(pod_observation(&p).init, InitState::Failed { reason, message, .. }
            if reason == "CrashLoopBackOff" && message.contains("404"))
        );
    }

    #[test]
    fn a_container_waiting_on_a_missing_secret_is_a_config_error_naming_it() {
        let p = pod(
            json!({"containerStatuses": [{"name": "router", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "CreateContainerConfigError",
            "message": "secret \"chat-redis\" not found"}}}]}),
        );
        assert_eq!(
            pod_observation(&p).config_error.as_deref(),
            Some("pod p: secret \"chat-redis\" not found")
        );
        let fine = pod(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(pod_observation(&fine).config_error, None);
    }

    #[test]
    fn a_ready_pod_has_verified_its_model() {
        let p = pod(json!({"conditions": [{"type": "Ready", "status": "True"}]}));
        let obs = pod_observation(&p);
        assert!(obs.ready);
        assert_eq!(obs.init, InitState::Succeeded);
    }
}
