//! Status when a round fails after validation: the API server refused a child. The user must
//! see it on the resource (`kubectl wait --for=condition=Ready` fails, `kubectl describe` shows
//! the reason and the server's message), not a `Ready=True` left over from an earlier round.

use deepseek_crds::status::{condition_types as ct, reasons};
use deepseek_crds::{DeepSeekDeployment, DeepSeekDeploymentStatus, Phase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::status::{condition, set_condition};

/// The previous status with `Ready=False` (`ApplyFailed`, `message`) for this generation; a
/// resource that never served becomes `Failed`, one that serves keeps serving and is `Degraded`.
pub fn apply_failed(
    dsd: &DeepSeekDeployment,
    message: &str,
    now: &Time,
) -> DeepSeekDeploymentStatus {
    let mut st = dsd.status.clone().unwrap_or_default();
    let gen = dsd.metadata.generation;
    set_condition(
        &mut st.conditions,
        condition(
            ct::READY,
            "False",
            reasons::APPLY_FAILED,
            message.to_string(),
            gen,
            now,
        ),
    );
    st.observed_generation = gen;
    st.phase = Some(if st.stable_revision.is_some() {
        Phase::Degraded
    } else {
        Phase::Failed
    });
    st.refresh_display();
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use k8s_openapi::jiff::Timestamp;

    fn ready_dsd() -> DeepSeekDeployment {
        let mut d: DeepSeekDeployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "inference.deepseek-k8s.dev/v1alpha1", "kind": "DeepSeekDeployment",
            "metadata": {"name": "chat", "namespace": "default", "generation": 4},
            "spec": {"model": {"name": "m", "source": {"url": {"url": "http://x"}},
                "files": [{"path": "m.gguf", "sha256": "a".repeat(64)}], "format": "gguf"}}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"));
        d.status = Some(DeepSeekDeploymentStatus {
            phase: Some(Phase::Healthy),
            observed_generation: Some(3),
            conditions: vec![Condition {
                type_: ct::READY.into(),
                status: "True".into(),
                reason: reasons::ALL_REPLICAS_READY.into(),
                message: "1/1".into(),
                observed_generation: Some(3),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            ..DeepSeekDeploymentStatus::default()
        });
        d
    }

    #[test]
    fn a_refused_apply_replaces_a_stale_ready_with_the_servers_message() {
        let msg = "Deployment chat-abc: Deployment.apps \"chat-abc\" is invalid: spec.template.spec.containers[0].lifecycle.preStop.sleep: Forbidden (422)";
        let st = apply_failed(&ready_dsd(), msg, &Time(Timestamp::now()));
        let ready = st.condition(ct::READY).expect("Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            ("False", reasons::APPLY_FAILED, msg)
        );
        assert_eq!(ready.observed_generation, Some(4));
        assert_eq!(st.observed_generation, Some(4));
        assert_eq!(st.phase, Some(Phase::Failed), "no revision ever served");
    }

    #[test]
    fn the_transition_is_one_warning_event() {
        let d = ready_dsd();
        let st = apply_failed(&d, "boom", &Time(Timestamp::now()));
        let changes =
            crate::status::transitions(&d.status.unwrap_or_default().conditions, &st.conditions);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].reason, reasons::APPLY_FAILED);
    }
}
