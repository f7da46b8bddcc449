//! `backup` and `restore` with a directory destination (a backup PVC), on real files:
//! generations, pruning to N, a corrupted backup refused, an interrupted backup harmless.
#![allow(clippy::unwrap_used)]

mod fetch_support;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use fetch_support::{model_dir, pattern, run_cli, sha256, stderr, stdout, tree};

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.gguf", pattern(300_000, 1)),
        ("tok/b.json", pattern(2_000, 2)),
    ]
}

/// Complete generation directories (not the `.partial-*` of an unfinished backup).
fn generations(dest: &Path) -> Vec<String> {
    let mut gens: Vec<String> = std::fs::read_dir(dest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    gens.sort();
    gens
}

async fn backup(src: &Path, dest: &Path, keep: &str) -> String {
    let out = run_cli(
        &[
            "backup",
            "--src",
            src.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
            "--keep",
            keep,
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

async fn restore(src: &Path, generation: &str, dest: &Path) -> std::process::Output {
    run_cli(
        &[
            "restore",
            "--src",
            src.to_str().unwrap(),
            "--generation",
            generation,
            "--dest",
            dest.to_str().unwrap(),
        ],
        &[],
    )
    .await
}

#[tokio::test]
async fn backups_make_timestamped_generations_pruned_to_keep_and_restore_the_latest() {
    let (tmp, model) = model_dir(&files()).await;
    let dest = tmp.path().join("backups");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(backup(&model, &dest, "2").await);
    }
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    assert_eq!(generations(&dest), ids[1..]);
    assert_eq!(
        tree(&dest.join(&ids[2])),
        [
            "a.gguf",
            "deepseek-manifest.json",
            "deepseek-manifest.sha256",
            "tok/b.json"
        ]
    );
    let restored = tmp.path().join("restored");
    let out = restore(&dest, "latest", &restored).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&ids[2]), "{}", stdout(&out));
    for (rel, bytes) in files() {
        assert_eq!(std::fs::read(restored.join(rel)).unwrap(), bytes);
    }
    let out = restore(&dest, &ids[1], &tmp.path().join("older")).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = restore(&dest, &ids[0], &tmp.path().join("pruned")).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("no complete generation {}", ids[0])),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn restore_refuses_a_corrupted_backup() {
    let (tmp, model) = model_dir(&files()).await;
    let dest = tmp.path().join("backups");
    let id = backup(&model, &dest, "3").await;
    let file = dest.join(&id).join("a.gguf");
    let mut bytes = std::fs::read(&file).unwrap();
    let good = sha256(&bytes);
    bytes[1000] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let restored = tmp.path().join("restored");
    let out = restore(&dest, "latest", &restored).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "a.gguf: SHA256 mismatch: expected {good}, got {}",
            sha256(&bytes)
        )),
        "{err}"
    );
    assert!(!restored.join("a.gguf").exists());
    assert!(!restored.join("deepseek-manifest.json").exists());
}

#[tokio::test]
async fn backup_refuses_source_files_that_no_longer_match_their_manifest() {
    let (tmp, model) = model_dir(&files()).await;
    let dest = tmp.path().join("backups");
    let first = backup(&model, &dest, "3").await;
    std::fs::write(model.join("tok/b.json"), b"changed").unwrap();
    let out = run_cli(
        &[
            "backup",
            "--src",
            model.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
            "--keep",
            "3",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tok/b.json: size mismatch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        tree(&dest).iter().filter(|p| p.starts_with('.')).count(),
        0,
        "{:?}",
        tree(&dest)
    );
    assert_eq!(generations(&dest), [first]);
}

/// The backup is killed while it copies a file (fed through a FIFO, so the kill lands mid-copy
/// every time): the earlier generation stays intact and remains the latest.
#[tokio::test]
async fn an_interrupted_backup_leaves_previous_generations_intact() {
    let (tmp, model) = model_dir(&files()).await;
    let dest = tmp.path().join("backups");
    let first = backup(&model, &dest, "3").await;

    let fifo = model.join("a.gguf");
    std::fs::remove_file(&fifo).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args([
            "backup",
            "--src",
            model.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
            "--keep",
            "3",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        // The reader may be killed before it drains the pipe: a broken pipe is expected then.
        let _ = w.write_all(&files()[0].1[..100_000]);
        std::thread::sleep(Duration::from_secs(2)); // keep it open until the kill
    });
    let staged = loop {
        let partials: Vec<String> = tree(&dest)
            .into_iter()
            .filter(|p| p.starts_with(".partial-"))
            .collect();
        if let Some(p) = partials.iter().find(|p| p.ends_with("a.gguf.partial")) {
            if std::fs::metadata(dest.join(p))
                .map(|m| m.len())
                .unwrap_or(0)
                >= 100_000
            {
                break p.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    child.kill().await.unwrap();
    writer.join().unwrap();
    assert!(staged.starts_with(".partial-"), "{staged}");
    assert_eq!(generations(&dest), std::slice::from_ref(&first));

    let restored = tmp.path().join("restored");
    let out = restore(&dest, "latest", &restored).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&first), "{}", stdout(&out));
    assert_eq!(
        std::fs::read(restored.join("a.gguf")).unwrap(),
        files()[0].1
    );

    // The next good backup cleans up what the interrupted one left.
    std::fs::remove_file(model.join("a.gguf")).unwrap();
    std::fs::write(model.join("a.gguf"), &files()[0].1).unwrap();
    let second = backup(&model, &dest, "3").await;
    assert_eq!(generations(&dest), [first, second]);
    assert!(
        tree(&dest).iter().all(|p| !p.starts_with(".partial-")),
        "{:?}",
        tree(&dest)
    );
}
