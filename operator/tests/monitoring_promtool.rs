//! The alert rules the operator renders, checked by the real `promtool` (Debian's `prometheus`
//! package, installed by `scripts/test-deps.sh` from `make test`):
//! - `promtool check rules` on the PrometheusRule of every example and fixture;
//! - the rule files under `monitoring/rules/` are exactly what the operator renders today for
//!   `monitoring/fixtures/` (regenerate with `UPDATE_GOLDEN=1 cargo test -p deepseek-operator
//!   --test monitoring_promtool`, then review the diff);
//! - `promtool test rules` runs the committed unit tests (`monitoring/tests/*.test.yaml`), which
//!   prove each alert fires above its threshold and stays silent below it.

use std::path::{Path, PathBuf};
use std::process::Command;

use deepseek_operator::desired::prometheus_rule::alerts;
use deepseek_operator::desired::{self, BuildConfig, ChildKind};
use deepseek_operator::render::parse;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn promtool() -> &'static str {
    let found = Command::new("promtool").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "promtool not found on PATH: run `make test-deps` (scripts/test-deps.sh installs Debian's \
         `prometheus` package, which provides it)"
    );
    "promtool"
}

/// The `{groups: [...]}` rule file of every PrometheusRule rendered from a YAML stream.
fn rule_file(path: &Path) -> Value {
    let input = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut groups = Vec::new();
    for dsd in parse(&input).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        let children = desired::build(&dsd, &BuildConfig::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for child in children
            .iter()
            .filter(|c| c.kind == ChildKind::PrometheusRule)
        {
            let spec_groups = child.object["spec"]["groups"].as_array().cloned();
            groups.extend(spec_groups.unwrap_or_default());
        }
    }
    json!({ "groups": groups })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn check_committed(rendered: &str, committed: &Path) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(committed, rendered).expect("write rule file");
        return;
    }
    let expected = std::fs::read_to_string(committed).unwrap_or_default();
    assert!(
        expected == rendered,
        "{} differs from what the operator renders; regenerate with `UPDATE_GOLDEN=1 cargo test \
         -p deepseek-operator --test monitoring_promtool` and review\n--- rendered ---\n{rendered}",
        committed.display()
    );
}

#[test]
fn committed_rule_files_are_what_the_operator_renders() {
    let m = repo().join("monitoring");
    let alerts = serde_yaml::to_string(&rule_file(&m.join("fixtures/alerts.yaml")))
        .expect("rules serialize");
    check_committed(&alerts, &m.join("rules/alerts.rules.yaml"));
    let scrape = serde_json::to_string_pretty(&rule_file(&m.join("fixtures/scrape.yaml")))
        .expect("rules serialize")
        + "\n";
    check_committed(&scrape, &m.join("rules/scrape.rules.json"));
}

#[test]
fn promtool_accepts_the_rules_of_every_example_and_fixture() {
    let tool = promtool();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inputs: Vec<PathBuf> = ["examples", "monitoring/fixtures"]
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join(d)).expect("dir exists"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    inputs.sort();
    let mut files = Vec::new();
    for input in &inputs {
        let rules = rule_file(input);
        if rules["groups"].as_array().is_none_or(Vec::is_empty) {
            continue; // monitoring disabled in this example
        }
        let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned());
        let file = dir
            .path()
            .join(format!("{}.rules.yaml", stem.unwrap_or_default()));
        std::fs::write(&file, serde_yaml::to_string(&rules).expect("yaml")).expect("write");
        files.push(file);
    }
    assert!(files.len() >= 3, "rules rendered from {inputs:?}");
    let out = run(Command::new(tool).arg("check").arg("rules").args(&files));
    for file in &files {
        assert!(
            out.contains(&format!("SUCCESS: {} rules found", alerts::ALL.len())),
            "{}: {out}",
            file.display()
        );
    }
}

#[test]
fn promtool_unit_tests_prove_each_alert_fires_above_and_stays_silent_below() {
    let tool = promtool();
    let tests = repo().join("monitoring/tests/alerts.test.yaml");
    let text = std::fs::read_to_string(&tests).expect("unit tests committed");
    for alert in alerts::ALL {
        let evals = text.matches(&format!("alertname: {alert}\n")).count();
        assert!(
            evals >= 2,
            "{alert}: needs a firing and a silent evaluation in {}",
            tests.display()
        );
    }
    let out = run(Command::new(tool)
        .current_dir(repo().join("monitoring/tests"))
        .args(["test", "rules", "alerts.test.yaml"]));
    assert!(out.contains("SUCCESS"), "{out}");
}
