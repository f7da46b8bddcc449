//! `fetch` against a real HTTP server on 127.0.0.1: good, corrupted, cut, stalled and missing
//! files, and a server that publishes its own manifest.
#![allow(clippy::unwrap_used)]

mod fetch_support;

use std::time::Instant;

use fetch_support::{pattern, run_cli, sha256, stderr, tree, Behaviour, FileServer};

const MIB: usize = 1 << 20;

fn manifest_of(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("deepseek-manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn downloads_pinned_files_and_writes_the_manifest() {
    let server = FileServer::start().await;
    let a = pattern(MIB + 5, 1);
    let b = pattern(1000, 2);
    server.add("m/model.gguf", a.clone(), Behaviour::Normal);
    server.add("m/tok/tokenizer.json", b.clone(), Behaviour::Normal);
    let dest = tempfile::tempdir().unwrap();
    let pin_a = format!("model.gguf={}", sha256(&a));
    let pin_b = format!("tok/tokenizer.json={}", sha256(&b).to_uppercase());
    let base = format!("{}/m", server.url);
    let d = dest.path().to_str().unwrap();
    let out = run_cli(
        &[
            "fetch", "--source", &base, "--dest", d, "--sha256", &pin_a, "--sha256", &pin_b,
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.path().join("model.gguf")).unwrap(), a);
    assert_eq!(
        std::fs::read(dest.path().join("tok/tokenizer.json")).unwrap(),
        b
    );
    assert_eq!(
        tree(dest.path()),
        [
            "deepseek-manifest.json",
            "deepseek-manifest.sha256",
            "model.gguf",
            "tok/tokenizer.json"
        ]
    );
    let m = manifest_of(dest.path());
    assert_eq!(m["files"][0]["path"], "model.gguf");
    assert_eq!(m["files"][0]["size"], (MIB + 5) as u64);
    assert_eq!(m["files"][0]["sha256"], sha256(&a));
    assert_eq!(m["files"][1]["sha256"], sha256(&b));
    let sums = std::fs::read_to_string(dest.path().join("deepseek-manifest.sha256")).unwrap();
    assert_eq!(
        sums,
        format!(
            "{}  model.gguf\n{}  tok/tokenizer.json\n",
            sha256(&a),
            sha256(&b)
        )
    );
}

#[tokio::test]
async fn rejects_a_corrupted_file_and_leaves_nothing_at_the_final_name() {
    let server = FileServer::start().await;
    let a = pattern(300_000, 3);
    server.add("model.gguf", a.clone(), Behaviour::Corrupt);
    let dest = tempfile::tempdir().unwrap();
    let pin = format!("model.gguf={}", sha256(&a));
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &server.url,
            "--dest",
            dest.path().to_str().unwrap(),
            "--sha256",
            &pin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let mut corrupted = a.clone();
    corrupted[a.len() / 2] ^= 0x5a;
    let err = stderr(&out);
    assert!(err.contains("model.gguf: SHA256 mismatch"), "{err}");
    assert!(err.contains(&format!("expected {}", sha256(&a))), "{err}");
    assert!(
        err.contains(&format!("got {}", sha256(&corrupted))),
        "{err}"
    );
    assert!(
        tree(dest.path()).is_empty(),
        "left behind: {:?}",
        tree(dest.path())
    );
}

#[tokio::test]
async fn resumes_a_cut_download_with_a_range_request() {
    let server = FileServer::start().await;
    let a = pattern(3 * MIB, 4);
    server.add("model.gguf", a.clone(), Behaviour::CutOnce { after: MIB });
    let dest = tempfile::tempdir().unwrap();
    let pin = format!("model.gguf={}", sha256(&a));
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &server.url,
            "--dest",
            dest.path().to_str().unwrap(),
            "--sha256",
            &pin,
            "--backoff-ms",
            "10",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.path().join("model.gguf")).unwrap(), a);
    let seen = server.seen("model.gguf");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    let resumed_at: usize = seen[1]
        .range
        .as_deref()
        .unwrap()
        .strip_prefix("bytes=")
        .unwrap()
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        resumed_at > 0 && resumed_at <= MIB,
        "resumed at {resumed_at}"
    );
}

#[tokio::test]
async fn retries_a_stalled_server_after_the_stall_timeout_and_resumes() {
    let server = FileServer::start().await;
    let a = pattern(2 * MIB, 5);
    server.add(
        "model.gguf",
        a.clone(),
        Behaviour::StallOnce { after: 64 * 1024 },
    );
    let dest = tempfile::tempdir().unwrap();
    let pin = format!("model.gguf={}", sha256(&a));
    let started = Instant::now();
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &server.url,
            "--dest",
            dest.path().to_str().unwrap(),
            "--sha256",
            &pin,
            "--stall-secs",
            "1",
            "--backoff-ms",
            "10",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr(&out).contains("stalled"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.path().join("model.gguf")).unwrap(), a);
    let seen = server.seen("model.gguf");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].range.as_deref(), Some("bytes=65536-"));
}

#[tokio::test]
async fn a_missing_file_fails_at_once_with_a_clear_404() {
    let server = FileServer::start().await;
    let dest = tempfile::tempdir().unwrap();
    let pin = format!("missing.gguf={}", sha256(b"x"));
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &server.url,
            "--dest",
            dest.path().to_str().unwrap(),
            "--sha256",
            &pin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}/missing.gguf: HTTP 404", server.url)),
        "{err}"
    );
    assert_eq!(server.seen("missing.gguf").len(), 1, "a 404 is not retried");
    assert!(tree(dest.path()).is_empty(), "{:?}", tree(dest.path()));
}

#[tokio::test]
async fn uses_the_manifest_the_server_publishes_when_nothing_is_pinned() {
    let server = FileServer::start().await;
    let a = pattern(5000, 6);
    server.add("g/a.bin", a.clone(), Behaviour::Normal);
    let manifest = format!(
        r#"{{"version":1,"files":[{{"path":"a.bin","size":5000,"sha256":"{}"}}]}}"#,
        sha256(&a)
    );
    server.add(
        "g/deepseek-manifest.json",
        manifest.into_bytes(),
        Behaviour::Normal,
    );
    let dest = tempfile::tempdir().unwrap();
    let base = format!("{}/g", server.url);
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &base,
            "--dest",
            dest.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.path().join("a.bin")).unwrap(), a);

    let empty = format!("{}/nothing", server.url);
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &empty,
            "--dest",
            dest.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("publishes no file list"),
        "{}",
        stderr(&out)
    );
}
