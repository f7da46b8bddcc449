//! The CUDA-enabled `deepseek-runtime` (issue 21), built by `scripts/build-cuda.sh` from NVIDIA's
//! CUDA 13 wheels without a GPU (make test-deps builds it cold; here it is a cargo no-op of a few
//! seconds), and run on this machine, which has no NVIDIA driver:
//! - it starts at all: no NVIDIA library is a load-time dependency (vendor/README.md);
//! - `serve --device cpu` serves the real model;
//! - `serve --device cuda` exits at startup naming the missing driver, no panic.
//!
//! On a machine that has the driver the last check is skipped (saying so): there `make
//! gpu-check` is the test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use deepseek_test_support::{
    free_port, model_path, wait_for_http_ready, workspace_root, ChildGuard,
};

/// Builds (or finds up to date) the CUDA binary and returns its path.
fn cuda_binary() -> PathBuf {
    let script = workspace_root().join("scripts/build-cuda.sh");
    let started = std::time::Instant::now();
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    eprintln!("build-cuda.sh took {:.1}s", started.elapsed().as_secs_f64());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let path = PathBuf::from(stdout.lines().last().unwrap().trim());
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

fn driver_present() -> bool {
    let ldconfig = Command::new("ldconfig").arg("-p").output();
    ldconfig.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libcuda.so.1"))
}

#[test]
fn the_cuda_binary_needs_no_nvidia_library_to_start() {
    let bin = cuda_binary();
    let out = Command::new("readelf")
        .args(["-d"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(out.status.success());
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        !needed.is_empty(),
        "readelf printed no NEEDED entries: {dynamic}"
    );
    for lib in ["libcuda", "libcublas", "libcurand", "libnvrtc", "libcudart"] {
        assert!(
            !needed.iter().any(|l| l.contains(lib)),
            "{lib} is a load-time dependency: {needed:#?}"
        );
    }
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
}

#[tokio::test]
async fn the_cuda_binary_serves_on_the_cpu_and_refuses_cuda_without_a_driver_clearly() {
    let bin = cuda_binary();
    let port = free_port();
    let _server = ChildGuard(
        Command::new(&bin)
            .args(["serve", "--device", "cpu", "--context-length", "512"])
            .arg("--model")
            .arg(model_path())
            .args(["--port", &port.to_string(), "--served-model-name", "m"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http_ready(&format!("{base}/readyz"), Duration::from_secs(120)).await;
    let body = serde_json::json!({"model": "m", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "Say hi."}]});
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert!(
        answer["choices"][0]["message"]["content"].is_string(),
        "{answer}"
    );

    if driver_present() {
        eprintln!(
            "an NVIDIA driver is installed here: `--device cuda` is checked by make gpu-check"
        );
        return;
    }
    let out = Command::new(&bin)
        .args(["serve", "--device", "cuda", "--context-length", "512"])
        .arg("--model")
        .arg(model_path())
        .args(["--port", &free_port().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "--device cuda started without a driver: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("--device cuda:0: cannot load libcuda.so.1 (the NVIDIA driver)"),
        "{stderr}"
    );
}
