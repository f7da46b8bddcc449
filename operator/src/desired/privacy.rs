//! `spec.privacy` as the runtime's `serve` flags and environment (pure). The PostgreSQL URL
//! stays in its Secret: the container reads it through `DSR_CONVERSATION_STORE`'s
//! `secretKeyRef`, so the operator never needs the Secret's contents.

use deepseek_crds::{DeepSeekDeploymentSpec, PrivacySpec};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

/// Environment variable the runtime reads the conversation store URL from.
pub use deepseek_crds::validate::CONVERSATION_STORE_ENV;

/// `serve` flags for `spec.privacy` (none without it: the runtime's defaults apply).
pub fn privacy_args(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    let Some(p) = &spec.privacy else {
        return Vec::new();
    };
    let mut args = Vec::new();
    if let Some(redact) = &p.redact {
        let names: Vec<&str> = redact.iter().map(|c| c.flag_name()).collect();
        let list = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(",")
        };
        args.extend(["--redact".into(), list]);
    }
    push_list(&mut args, "--allowed-origins", &p.allowed_origins);
    if let Some(secs) = p.retention_seconds {
        args.extend(["--conversation-retention-secs".into(), secs.to_string()]);
    }
    if p.endpoints {
        args.push("--privacy-endpoints".into());
    }
    push_list(&mut args, "--privacy-purposes", &p.purposes);
    push_list(&mut args, "--privacy-recipients", &p.recipients);
    args
}

/// `route` flags for `spec.privacy`: the router checks `Origin` on WebSocket upgrades too.
pub fn router_args(spec: &DeepSeekDeploymentSpec) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(p) = &spec.privacy {
        push_list(&mut args, "--allowed-origins", &p.allowed_origins);
    }
    args
}

fn push_list(args: &mut Vec<String>, flag: &str, values: &[String]) {
    if !values.is_empty() {
        args.extend([flag.to_string(), values.join(",")]);
    }
}

/// The conversation store's URL from its Secret, when one is configured.
pub fn privacy_env(spec: &DeepSeekDeploymentSpec) -> Vec<EnvVar> {
    let Some(PrivacySpec {
        conversation_store: Some(secret),
        ..
    }) = &spec.privacy
    else {
        return Vec::new();
    };
    vec![EnvVar {
        name: CONVERSATION_STORE_ENV.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::desired::tests::{base_spec, child, children, dsd, runtime_container, with};
    use crate::desired::ChildKind;
    use serde_json::{json, Value};

    /// The rendered runtime container of a DeepSeekDeployment with `privacy`.
    fn container(privacy: Value) -> Value {
        let d = dsd(with(base_spec(), "/privacy", privacy));
        let all = children(&d);
        runtime_container(child(&all, ChildKind::Deployment)).clone()
    }

    #[test]
    fn every_privacy_field_becomes_the_serve_flag_the_runtime_accepts() {
        let c = container(json!({
            "redact": ["email", "cn_id"], "allowedOrigins": ["https://a.example", "https://b.example"],
            "conversationStore": {"name": "pg", "key": "url"}, "retentionSeconds": 604800,
            "endpoints": true, "purposes": ["support"], "recipients": ["support team"],
        }));
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let want = [
            "--redact",
            "email,cn_id",
            "--allowed-origins",
            "https://a.example,https://b.example",
            "--conversation-retention-secs",
            "604800",
            "--privacy-endpoints",
            "--privacy-purposes",
            "support",
            "--privacy-recipients",
            "support team",
        ];
        assert!(args.windows(want.len()).any(|w| w == want), "{args:?}");
        let all = children(&dsd(with(
            base_spec(),
            "/privacy",
            json!({"allowedOrigins": ["https://a.example"]}),
        )));
        let router = all
            .iter()
            .find(|c| {
                c.kind == ChildKind::Deployment && c.object["metadata"]["name"] == "chat-router"
            })
            .unwrap();
        let router_args = &router.object["spec"]["template"]["spec"]["containers"][0]["args"];
        let tail: Vec<&Value> = router_args
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .take(2)
            .collect();
        assert_eq!(
            tail,
            [&json!("https://a.example"), &json!("--allowed-origins")],
            "{router_args}"
        );
        let env = c["env"].as_array().unwrap();
        assert!(
            env.contains(&json!({"name": CONVERSATION_STORE_ENV,
            "valueFrom": {"secretKeyRef": {"name": "pg", "key": "url", "optional": false}}})),
            "{env:?}"
        );
    }

    #[test]
    fn an_empty_redact_list_turns_redaction_off_and_no_privacy_adds_nothing() {
        let c = container(json!({"redact": []}));
        let args = c["args"].as_array().unwrap();
        assert!(
            args.windows(2)
                .any(|w| w == [json!("--redact"), json!("none")]),
            "{args:?}"
        );
        let plain = dsd(base_spec());
        let spec = &plain.spec;
        assert!(privacy_args(spec).is_empty() && privacy_env(spec).is_empty());
    }
}
