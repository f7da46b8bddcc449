//! `make gpu-check`'s CPU side, without a GPU: scripts/gpu-check.sh and the `gpu-check`
//! subcommand run their whole pipeline on `--device cpu` with the tiny shape (the real SmolLM2,
//! the tiny qwen2/deepseek2 references, a generated random checkpoint), and the JSON and table
//! carry every figure; bad arguments are refused with a message that says what to pass.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use deepseek_test_support::{model_path, workspace_root};

fn cpu_args(work: &std::path::Path) -> Vec<String> {
    let fixtures = workspace_root().join("runtime/engine/tests/fixtures/parity");
    [
        "--device",
        "cpu",
        "--shapes",
        "tiny",
        "--batches",
        "1,3",
        "--context",
        "16",
        "--steps",
        "2",
        "--ttft-prompt",
        "64",
        "--greedy-tokens",
        "4",
        "--card",
        "Test Card",
        "--card-bandwidth-gbs",
        "100",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--model".into(),
        model_path().display().to_string(),
        "--fixtures".into(),
        fixtures.display().to_string(),
        "--work-dir".into(),
        work.join("ckpt").display().to_string(),
        "--out".into(),
        work.join("out").display().to_string(),
    ])
    .collect()
}

#[test]
fn the_script_runs_the_whole_check_on_the_cpu_and_writes_json_and_table() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(workspace_root().join("scripts/gpu-check.sh"))
        .args(cpu_args(work.path()))
        .env("DSR_CUDA_BIN", env!("CARGO_BIN_EXE_deepseek-runtime"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("out/gpu-check.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["card"], "Test Card");
    assert_eq!(json["device"], "cpu");
    assert_eq!(json["passed"], true, "{json:#}");
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "{json:#}");
    assert!(checks
        .iter()
        .any(|c| c["name"].as_str().unwrap().contains("deepseek2")));
    let decode = json["decode"].as_array().unwrap();
    assert_eq!(decode.len(), 2);
    for row in decode {
        let achieved = row["achieved_gbs"].as_f64().unwrap();
        let fraction = row["bandwidth_fraction"].as_f64().unwrap();
        assert!(
            achieved > 0.0 && (fraction - achieved / 100.0).abs() < 1e-12,
            "{row}"
        );
        assert!(row["tokens_per_sec"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(decode[1]["batch"], 3);
    assert_eq!(json["ttft"][0]["prompt_tokens"], 64);
    let table = std::fs::read_to_string(work.path().join("out/gpu-check.txt")).unwrap();
    assert!(
        table.contains("card: Test Card (100 GB/s peak), device cpu"),
        "{table}"
    );
    assert_eq!(table.matches("PASS").count(), 4, "{table}");
    assert!(
        table.contains("TTFT dense-tiny for a 64-token prompt"),
        "{table}"
    );
}

#[test]
fn bad_arguments_say_what_to_pass() {
    let work = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_deepseek-runtime");
    let mut args = cpu_args(work.path());
    // An unknown card with no bandwidth given: nothing to compute fractions against.
    let i = args
        .iter()
        .position(|a| a == "--card-bandwidth-gbs")
        .unwrap();
    args.drain(i..i + 2);
    let i = args.iter().position(|a| a == "Test Card").unwrap();
    args[i] = "Mystery GPU".into();
    let out = Command::new(bin)
        .arg("gpu-check")
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --card-bandwidth-gbs"));

    let mut args = cpu_args(work.path());
    let i = args.iter().position(|a| a == "tiny").unwrap();
    args[i] = "70b".into();
    let out = Command::new(bin)
        .arg("gpu-check")
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown shape \"70b\" (tiny, 1.5b, 7b)"));

    // Not a GPU machine and no --device cpu: the script refuses before running anything.
    let out = Command::new(workspace_root().join("scripts/gpu-check.sh"))
        .env("DSR_CUDA_BIN", bin)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    if !std::path::Path::new("/usr/bin/nvidia-smi").exists() {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a GPU machine"));
    }
}
