//! `serve` verifies the real SmolLM2 GGUF against the manifest `fetch` wrote before loading it:
//! a file changed afterwards is refused with exit code 3 and a message naming it.
#![allow(clippy::unwrap_used)]

mod fetch_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fetch_support::{run_cli, stderr};

const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn real_model() -> PathBuf {
    deepseek_test_support::model_path()
}

/// The real model copied into `TMP/model/` by `fetch` (which writes the manifest).
async fn fetched_model() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(real_model(), src.join(GGUF)).unwrap();
    let dest = tmp.path().join("model");
    let out = run_cli(
        &[
            "fetch",
            "--source",
            src.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    (tmp, dest.join(GGUF))
}

/// Flips one byte near the end of the file (tensor data: the file still loads).
fn change_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

use deepseek_test_support::free_port;

/// Starts `serve` and waits for /healthz; returns the child and the stderr file.
async fn serve_until_healthy(
    model: &Path,
    envs: &[(&str, &str)],
) -> (tokio::process::Child, PathBuf) {
    let port = free_port();
    let log = model.with_extension("log");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"));
    cmd.args([
        "serve",
        "--model",
        model.to_str().unwrap(),
        "--port",
        &port.to_string(),
    ])
    .args(["--threads", "1", "--kv-cache-mb", "64"])
    .env_remove("DSR_VERIFY")
    .env("RUST_LOG", "info")
    .envs(envs.iter().copied())
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return (child, log);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "serve did not become healthy: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[tokio::test]
async fn serve_refuses_a_model_changed_after_the_manifest_was_written() {
    let (_tmp, model) = fetched_model().await;
    let manifest =
        std::fs::read_to_string(model.parent().unwrap().join("deepseek-manifest.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let expected = expected["files"][0]["sha256"].as_str().unwrap().to_string();
    change_last_byte(&model);
    let out = run_cli(
        &["serve", "--model", model.to_str().unwrap(), "--port", "0"],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refusing to load the model"), "{err}");
    assert!(
        err.contains(&format!(
            "{GGUF}: SHA256 mismatch: expected {expected}, got "
        )),
        "{err}"
    );
}

#[tokio::test]
async fn serve_verifies_an_intact_model_then_serves_and_skips_verification_when_told() {
    let (_tmp, model) = fetched_model().await;
    let (mut child, log) = serve_until_healthy(&model, &[]).await;
    child.kill().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("model files verified"), "{text}");

    change_last_byte(&model);
    let (mut child, log) = serve_until_healthy(&model, &[("DSR_VERIFY", "false")]).await;
    child.kill().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("model file verification disabled"), "{text}");
}
