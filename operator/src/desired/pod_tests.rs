//! Pod-level builder tests: init and serving containers, volumes, secrets, runtime settings.

use serde_json::json;

use super::tests::{base_spec, child, children, dsd, runtime_container, with, SHA};
use super::*;

#[test]
fn init_container_fetches_and_verifies_every_file() {
    let out = children(&dsd(base_spec()));
    let init = &child(&out, ChildKind::Deployment)["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["command"], json!(["deepseek-runtime"]));
    assert_eq!(
        init["args"],
        json!([
            "fetch",
            "--source",
            "http://models.local/smollm2",
            "--dest",
            "/models",
            "--allow-insecure-http",
            "--sha256",
            format!("SmolLM2-135M-Instruct.Q4_1.gguf={SHA}")
        ])
    );
}

#[test]
fn init_container_allows_plain_http_only_where_the_spec_names_it() {
    let args = |spec: serde_json::Value| {
        let out = children(&dsd(spec));
        let pod = &child(&out, ChildKind::Deployment)["spec"]["template"]["spec"];
        pod["initContainers"][0]["args"].clone()
    };
    let allows = |a: &serde_json::Value| {
        a.as_array()
            .is_some_and(|a| a.iter().any(|v| v == "--allow-insecure-http"))
    };
    let https = with(
        base_spec(),
        "/model/source/url/url",
        json!("https://models.example/smollm2"),
    );
    assert!(!allows(&args(https)));
    let minio = with(
        base_spec(),
        "/model/source",
        json!({"s3": {"bucket": "m", "prefix": "p", "endpoint": "http://minio:9000"}}),
    );
    assert!(allows(&args(minio)), "an http:// S3 endpoint");
    assert!(allows(&args(base_spec())), "the base spec's URL is http://");
}

#[test]
fn runtime_serves_the_model_file_under_its_name_and_revision() {
    let d = dsd(base_spec());
    let revision = naming::revision(&d.spec, &BuildConfig::default());
    let out = children(&d);
    let deployment = child(&out, ChildKind::Deployment);
    assert_eq!(
        deployment["metadata"]["name"],
        json!(format!("chat-{revision}"))
    );
    let container = runtime_container(deployment);
    assert_eq!(
        container["args"],
        json!([
            "serve",
            "--model",
            "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
            "--served-model-name",
            "smollm2",
            "--revision",
            revision,
            "--host",
            "0.0.0.0",
            "--port",
            "8000"
        ])
    );
    assert_eq!(
        container["startupProbe"]["httpGet"]["path"],
        json!("/readyz")
    );
    assert_eq!(container["startupProbe"]["failureThreshold"], json!(360));
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        json!("/healthz")
    );
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        json!(format!("chat-{revision}"))
    );
}

#[test]
fn pvc_source_mounts_the_claim_read_only_and_verifies_in_place() {
    let spec = with(
        base_spec(),
        "/model/source",
        json!({"pvc": {"claimName": "model-store", "path": "smollm2"}}),
    );
    let out = children(&dsd(spec));
    let pod = &child(&out, ChildKind::Deployment)["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"],
        json!({"claimName": "model-store", "readOnly": true})
    );
    assert_eq!(
        pod["initContainers"][0]["args"][2],
        json!("pvc://model-store/smollm2")
    );
    assert_eq!(
        pod["initContainers"][0]["volumeMounts"][0]["readOnly"],
        json!(true)
    );
    // Only the source's directory is mounted, so the files sit right under /models.
    for container in [&pod["initContainers"][0], &pod["containers"][0]] {
        assert_eq!(container["volumeMounts"][0]["mountPath"], json!("/models"));
        assert_eq!(container["volumeMounts"][0]["subPath"], json!("smollm2"));
    }
}

/// The router Deployment's pod spec among `out`.
fn router_pod(out: &[DesiredChild]) -> &serde_json::Value {
    let router = out
        .iter()
        .find(|c| c.kind == ChildKind::Deployment && c.name.ends_with("-router"))
        .expect("router deployment");
    &router.object["spec"]["template"]["spec"]
}

#[test]
fn tls_terminates_at_the_routers_which_mount_the_secret() {
    let spec = with(base_spec(), "/tls", json!({"secretName": "chat-tls"}));
    let out = children(&dsd(spec));
    let router = router_pod(&out);
    let container = &router["containers"][0];
    let args = container["args"].as_array().expect("args");
    for arg in [
        "--tls-cert",
        "/etc/deepseek/tls/tls.crt",
        "--tls-key",
        "/etc/deepseek/tls/tls.key",
    ] {
        assert!(args.contains(&json!(arg)), "{arg} in {args:?}");
    }
    // Probes go to the plain-HTTP admin port, so they work whatever the certificate.
    assert_eq!(
        container["readinessProbe"]["httpGet"]["port"],
        json!("admin")
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["scheme"],
        json!("HTTP")
    );
    let volumes = router["volumes"].as_array().expect("volumes");
    assert!(volumes.contains(&json!({"name": "tls", "secret": {"secretName": "chat-tls"}})));
    // Behind the routers the runtime stays plain HTTP.
    let runtime = runtime_container(child(&out, ChildKind::Deployment));
    assert!(!runtime["args"]
        .as_array()
        .expect("args")
        .contains(&json!("--tls-cert")));
    assert_eq!(
        runtime["readinessProbe"]["httpGet"]["scheme"],
        json!("HTTP")
    );
}

#[test]
fn auth_mounts_the_secret_keys_as_files_and_never_passes_a_value() {
    let spec = with(
        base_spec(),
        "/auth",
        json!({"jwtSecretRef": {"name": "jwt", "key": "hs256"},
               "apiKeysRef": {"name": "keys", "key": "list"}, "rolesClaim": "groups"}),
    );
    let out = children(&dsd(spec));
    let runtime_pod = &child(&out, ChildKind::Deployment)["spec"]["template"]["spec"];
    for pod in [runtime_pod, router_pod(&out)] {
        let container = &pod["containers"][0];
        let args = container["args"].as_array().expect("args");
        for pair in [
            ["--jwt-secret-file", "/etc/deepseek/auth/jwt-secret"],
            ["--api-keys-file", "/etc/deepseek/auth/api-keys"],
            ["--jwt-roles-claim", "groups"],
        ] {
            let at = args.iter().position(|a| a == pair[0]).expect(pair[0]);
            assert_eq!(args[at + 1], json!(pair[1]));
        }
        let auth = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "auth")
            .expect("auth volume");
        assert_eq!(
            auth["projected"]["sources"],
            json!([
                {"secret": {"name": "jwt", "items": [{"key": "hs256", "path": "jwt-secret"}], "optional": false}},
                {"secret": {"name": "keys", "items": [{"key": "list", "path": "api-keys"}], "optional": false}}
            ])
        );
        // No environment variable carries a credential.
        assert!(!container["env"].to_string().contains("secretKeyRef"));
    }
}

#[test]
fn safetensors_models_are_served_from_their_directory() {
    let files = json!([
        {"path": "r1/model.safetensors", "sha256": SHA},
        {"path": "r1/config.json", "sha256": SHA},
        {"path": "r1/tokenizer.json", "sha256": SHA}
    ]);
    let spec = with(base_spec(), "/model/files", files);
    let spec = with(spec, "/model/format", json!("safetensors"));
    let d = dsd(spec);
    assert_eq!(containers::model_path(&d.spec), "/models/r1");
}

#[test]
fn config_map_carries_runtime_settings_under_the_runtime_env_names() {
    let spec = with(
        base_spec(),
        "/runtime",
        json!({"maxBatchSize": 4, "threads": 2}),
    );
    let out = children(&dsd(spec));
    assert_eq!(
        child(&out, ChildKind::ConfigMap)["data"],
        json!({"DSR_MAX_BATCH_SIZE": "4", "DSR_THREADS": "2", "DSR_SHUTDOWN_GRACE_SECS": "100"})
    );
}

#[test]
fn scaling_replicas_leaves_the_pod_template_untouched() {
    // A template change rolls every GPU pod; a replica change must only add or remove pods.
    let template = |replicas: i32, placement: serde_json::Value| {
        let spec = with(base_spec(), "/replicas", json!(replicas));
        let spec = with(spec, "/placement", placement);
        child(&children(&dsd(spec)), ChildKind::Deployment)["spec"]["template"].clone()
    };
    assert_eq!(template(1, json!({})), template(2, json!({})));
    let zones = json!({"zones": ["a", "b"]});
    assert_eq!(template(2, zones.clone()), template(5, zones));
}

#[test]
fn runtime_pods_admit_only_the_routers_and_the_monitoring_namespace() {
    let out = children(&dsd(base_spec()));
    let policy = child(&out, ChildKind::NetworkPolicy);
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        json!(naming::runtime_selector("chat"))
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        policy["spec"]["ingress"],
        json!([
            {"from": [{"podSelector": {"matchLabels": router::router_selector("chat")}}],
             "ports": [{"port": "http", "protocol": "TCP"}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
             "ports": [{"port": "admin", "protocol": "TCP"}]}
        ])
    );
    // The ports it names are the ones the runtime container declares.
    let names: Vec<&serde_json::Value> = runtime_container(child(&out, ChildKind::Deployment))
        ["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("http"), &json!("admin")]);
}
