//! Golden tests of `render` for every DeepSeekDeployment in `examples/` and of `manifests`.
//!
//! The expected output lives in `operator/tests/golden/<example>.yaml`. After an intended change
//! to the builders, regenerate with:
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test -p deepseek-operator --test render_golden
//! ```
//!
//! and review the diff before committing it.

use std::path::{Path, PathBuf};
use std::process::Command;

use deepseek_operator::desired::manifests::{manifests, ManifestConfig};
use deepseek_operator::desired::BuildConfig;
use deepseek_operator::render::{render, to_yaml_stream};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.yaml"))
}

/// Compares with the golden file, or rewrites it when UPDATE_GOLDEN is set.
fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create golden dir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name}: render output differs from {}; if intended, regenerate with \
         `UPDATE_GOLDEN=1 cargo test -p deepseek-operator --test render_golden`\n--- actual ---\n{actual}",
        path.display()
    );
}

fn example(name: &str) -> String {
    let path = repo_root().join("examples").join(format!("{name}.yaml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn render_example(name: &str) -> String {
    render(&example(name), &BuildConfig::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn minimal_example_renders_as_golden() {
    check_golden("minimal", &render_example("minimal"));
}

#[test]
fn safetensors_example_renders_as_golden() {
    check_golden("safetensors", &render_example("safetensors"));
}

#[test]
fn multi_zone_example_renders_as_golden() {
    check_golden("multi-zone", &render_example("multi-zone"));
}

#[test]
fn cpu_smollm2_example_renders_as_golden() {
    check_golden("cpu-smollm2", &render_example("cpu-smollm2"));
}

#[test]
fn canary_example_renders_as_golden() {
    check_golden("canary", &render_example("canary"));
}

#[test]
fn secure_example_renders_as_golden() {
    check_golden("secure", &render_example("secure"));
}

#[test]
fn manifests_render_as_golden() {
    let objects = manifests(&ManifestConfig::default()).expect("manifests build");
    check_golden(
        "manifests",
        &to_yaml_stream(&objects).expect("manifests serialize"),
    );
}

#[test]
fn every_example_has_a_golden_test() {
    let covered = [
        "minimal",
        "safetensors",
        "multi-zone",
        "cpu-smollm2",
        "canary",
        "secure",
    ];
    let mut found: Vec<String> = std::fs::read_dir(repo_root().join("examples"))
        .expect("examples dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    found.sort();
    let mut expected: Vec<String> = covered.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(
        found, expected,
        "add a golden test for each DeepSeekDeployment example"
    );
}

#[test]
fn render_cli_prints_the_golden_stream() {
    let out = Command::new(env!("CARGO_BIN_EXE_deepseek-operator"))
        .args(["render", "-f"])
        .arg(repo_root().join("examples/cpu-smollm2.yaml"))
        .output()
        .expect("run deepseek-operator");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::env::var_os("UPDATE_GOLDEN").is_none() {
        let expected = std::fs::read_to_string(golden_path("cpu-smollm2")).expect("golden exists");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}

#[test]
fn render_cli_rejects_an_invalid_spec_naming_each_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    let bad = example("cpu-smollm2")
        .replace(
            "\n    gpus: 0\n",
            "\n    gpus: 1\n    gpuResourceName: gpu\n",
        )
        .replace(
            "- path: SmolLM2-135M-Instruct.Q4_1.gguf",
            "- path: ../SmolLM2.gguf",
        );
    std::fs::write(&path, bad).expect("write bad spec");
    let out = Command::new(env!("CARGO_BIN_EXE_deepseek-operator"))
        .args(["render", "-f"])
        .arg(&path)
        .output()
        .expect("run deepseek-operator");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "nothing rendered for an invalid spec"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.model.files[0].path"), "{stderr}");
    assert!(stderr.contains("spec.runtime.gpuResourceName"), "{stderr}");
}

#[test]
fn crd_cli_prints_the_committed_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_deepseek-operator"))
        .arg("crd")
        .output()
        .expect("run crd");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo_root().join("crds/deepseekdeployments.yaml"))
        .expect("committed CRD");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}
