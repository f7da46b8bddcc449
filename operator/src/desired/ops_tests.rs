//! Builder tests of the operational children: alert thresholds and labels, the monitoring
//! switch, the backup CronJob for a PVC destination, per-zone budgets and their names.

use serde_json::{json, Value};

use super::tests::{base_spec, child, children, dsd, with};
use super::*;

fn rule_of<'a>(rule: &'a Value, alert: &str) -> &'a Value {
    rule["spec"]["groups"][0]["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["alert"] == alert))
        .expect("alert present")
}

#[test]
fn alert_thresholds_come_from_spec_monitoring() {
    let spec = with(
        base_spec(),
        "/monitoring",
        json!({"gpuUtilThreshold": 77, "p99LatencySeconds": 1.5, "errorRatio": 0.02, "forDuration": "2m"}),
    );
    let out = children(&dsd(spec));
    let rule = child(&out, ChildKind::PrometheusRule);
    let util = rule_of(rule, prometheus_rule::alerts::GPU_UTILIZATION_HIGH);
    assert!(
        util["expr"].as_str().is_some_and(|e| e.ends_with("> 77")),
        "{util}"
    );
    assert_eq!(util["for"], "2m");
    let p99 = rule_of(rule, prometheus_rule::alerts::LATENCY_P99_HIGH);
    assert!(
        p99["expr"].as_str().is_some_and(|e| e.ends_with("> 1.5")),
        "{p99}"
    );
    let errors = rule_of(rule, prometheus_rule::alerts::ERROR_RATIO_HIGH);
    assert!(
        errors["expr"]
            .as_str()
            .is_some_and(|e| e.ends_with("> 0.02")),
        "{errors}"
    );
}

#[test]
fn every_alert_names_its_deployment_severity_and_runbook() {
    let out = children(&dsd(base_spec()));
    let rule = child(&out, ChildKind::PrometheusRule);
    for alert in prometheus_rule::alerts::ALL {
        let r = rule_of(rule, alert);
        assert_eq!(r["labels"]["namespace"], "ai");
        assert_eq!(r["labels"][prometheus_rule::DEPLOYMENT_LABEL], "chat");
        assert!(["warning", "critical"].contains(&r["labels"]["severity"].as_str().unwrap_or("")));
        assert_eq!(
            r["annotations"]["runbook_url"],
            json!(format!("README.md#{}", alert.to_lowercase()))
        );
        assert!(r["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("ai/chat")));
    }
}

#[test]
fn disabled_monitoring_builds_no_monitoring_children() {
    let spec = with(base_spec(), "/monitoring", json!({"enabled": false}));
    let out = children(&dsd(spec));
    assert!(out.iter().all(|c| !is_monitoring(&c.object)));
    assert!(out.iter().all(|c| c.kind != ChildKind::PrometheusRule));
}

#[test]
fn monitoring_children_carry_the_users_selector_labels() {
    let spec = with(
        base_spec(),
        "/monitoring",
        json!({"labels": {"release": "prometheus"}}),
    );
    let out = children(&dsd(spec));
    let monitoring: Vec<&DesiredChild> = out.iter().filter(|c| is_monitoring(&c.object)).collect();
    assert_eq!(monitoring.len(), 3);
    for c in monitoring {
        assert_eq!(c.object["metadata"]["labels"]["release"], "prometheus");
    }
}

#[test]
fn a_pvc_backup_mounts_the_claim_and_writes_under_backup() {
    let spec = with(
        base_spec(),
        "/backup",
        json!({"schedule": "0 3 * * *", "keep": 2, "destination": {"pvc": {"claimName": "vault", "path": "models/chat"}}}),
    );
    let out = children(&dsd(spec));
    let cron = child(&out, ChildKind::CronJob);
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["args"],
        json!([
            "backup",
            "--src",
            "/models",
            "--dest",
            "/backup/models/chat",
            "--keep",
            "2"
        ])
    );
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    assert!(volumes
        .iter()
        .any(|v| v["persistentVolumeClaim"]["claimName"] == "vault"));
    assert_eq!(pod["initContainers"][0]["name"], "fetch");
    assert_eq!(pod["restartPolicy"], "Never");
    assert!(
        pod["containers"][0].get("envFrom").is_none(),
        "no credentials for a PVC"
    );
}

#[test]
fn a_backup_of_a_pvc_source_sees_the_same_files_the_fetch_step_verified() {
    let spec = with(
        base_spec(),
        "/model/source",
        json!({"pvc": {"claimName": "model-store", "path": "smollm2"}}),
    );
    let spec = with(
        spec,
        "/backup",
        json!({"schedule": "0 3 * * *", "destination": {"pvc": {"claimName": "vault"}}}),
    );
    let out = children(&dsd(spec));
    let pod = &child(&out, ChildKind::CronJob)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    for container in [&pod["initContainers"][0], &pod["containers"][0]] {
        assert_eq!(container["volumeMounts"][0]["mountPath"], json!("/models"));
        assert_eq!(container["volumeMounts"][0]["subPath"], json!("smollm2"));
    }
}

#[test]
fn a_long_name_still_gives_a_valid_cron_job_name() {
    let long = "a".repeat(52);
    let name = naming::backup_name(&long);
    assert!(name.len() <= naming::MAX_CRONJOB_NAME, "{name}");
    assert!(name.ends_with("-backup"));
    assert_ne!(
        name,
        naming::backup_name(&"a".repeat(51)),
        "distinct names stay distinct"
    );
    assert_eq!(naming::backup_name("chat"), "chat-backup");
}

#[test]
fn with_zones_each_runtime_pod_is_selected_by_exactly_one_budget_that_allows_a_drain() {
    // One pod per zone: the eviction API refuses a pod under two budgets, and minAvailable 1
    // over a one-pod zone would allow no eviction at all.
    for replicas in [3, 4, 6] {
        let spec = with(base_spec(), "/replicas", json!(replicas));
        let spec = with(
            spec,
            "/placement",
            json!({"zones": ["eu-1a", "eu-1b", "eu-1c"]}),
        );
        let out = children(&dsd(spec));
        let runtime_budgets: Vec<&serde_json::Value> = out
            .iter()
            .filter(|c| c.kind == ChildKind::PodDisruptionBudget && c.name != "chat-router")
            .map(|c| &c.object)
            .collect();
        assert_eq!(runtime_budgets.len(), 1, "{replicas} replicas");
        let budget = runtime_budgets[0];
        assert_eq!(
            budget["spec"]["selector"]["matchLabels"],
            json!(naming::runtime_selector("chat"))
        );
        let min = budget["spec"]["minAvailable"]
            .as_i64()
            .expect("minAvailable");
        assert!(
            min < i64::from(replicas),
            "{replicas} replicas, minAvailable {min}"
        );
    }
}

#[test]
fn an_explicit_budget_is_kept_as_written() {
    let zones = json!({"zones": ["a", "b"], "pdbMinAvailable": 1});
    let spec = with(
        with(base_spec(), "/replicas", json!(2)),
        "/placement",
        zones,
    );
    assert_eq!(pdb::min_available(&dsd(spec).spec), Some(1));
}

#[test]
fn an_operator_upgrade_keeps_the_image_a_running_revision_was_created_with() {
    let old = BuildConfig {
        runtime_image: "deepseek-runtime:0.1".into(),
        ..BuildConfig::default()
    };
    let new = BuildConfig {
        runtime_image: "deepseek-runtime:0.2".into(),
        ..BuildConfig::default()
    };
    let mut d = dsd(base_spec());
    let stable = naming::revision_ref(&d.spec, &old);
    d.status = Some(deepseek_crds::DeepSeekDeploymentStatus {
        stable_revision: Some(stable.clone()),
        ..Default::default()
    });
    let cfg = naming::pinned_config(&d.spec, d.status.as_ref(), &new);
    assert_eq!(cfg.runtime_image, "deepseek-runtime:0.1");
    assert_eq!(
        naming::revision_ref(&d.spec, &cfg),
        stable,
        "no new revision, no canary"
    );
    // A spec change is a new revision: it takes the operator's current default.
    let changed = with(
        base_spec(),
        "/runtime",
        json!({"extraArgs": ["--log-json"]}),
    );
    let cfg = naming::pinned_config(&dsd(changed).spec, d.status.as_ref(), &new);
    assert_eq!(cfg.runtime_image, "deepseek-runtime:0.2");
    // A pinned image is the user's: never replaced by a recorded one.
    let pinned = with(base_spec(), "/runtime", json!({"image": "mine:1"}));
    let cfg = naming::pinned_config(&dsd(pinned).spec, d.status.as_ref(), &new);
    assert_eq!(cfg, new);
}
