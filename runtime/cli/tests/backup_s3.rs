//! `backup` and `restore` with an S3 destination, against a real `moto_server`: generations
//! marked complete last, pruning, a corrupted object refused, an interrupted backup harmless,
//! and a generation used directly as a `fetch` source.
#![allow(clippy::unwrap_used)]

mod fetch_support;

use std::io::Write;
use std::time::Duration;

use fetch_support::{as_refs, model_dir, pattern, run_cli, sha256, stderr, stdout, Moto};

fn files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.gguf", pattern(700_000, 1)),
        ("tok/b.json", pattern(3_000, 2)),
    ]
}

/// Generation IDs under `prefix/` and whether each has its COMPLETE marker.
async fn generations(moto: &Moto, bucket: &str) -> Vec<(String, bool)> {
    let objects = moto.client().list(bucket, "bk/").await.unwrap();
    let mut gens: Vec<(String, bool)> = Vec::new();
    for o in objects {
        let (id, rest) = o.key.strip_prefix("bk/").unwrap().split_once('/').unwrap();
        if !gens.iter().any(|(g, _)| g == id) {
            gens.push((id.to_string(), false));
        }
        if rest == "COMPLETE" {
            gens.iter_mut()
                .filter(|(g, _)| g == id)
                .for_each(|g| g.1 = true);
        }
    }
    gens.sort();
    gens
}

async fn backup(moto: &Moto, src: &std::path::Path, keep: &str) -> String {
    let env = moto.env();
    let out = run_cli(
        &[
            "backup",
            "--src",
            src.to_str().unwrap(),
            "--dest",
            "s3://backups/bk",
            "--keep",
            keep,
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[tokio::test]
async fn backs_up_to_s3_prunes_restores_and_serves_a_generation_as_a_source() {
    let moto = Moto::start();
    moto.client().create_bucket("backups").await.unwrap();
    let (tmp, model) = model_dir(&files()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(backup(&moto, &model, "2").await);
    }
    let gens = generations(&moto, "backups").await;
    assert_eq!(gens, [(ids[1].clone(), true), (ids[2].clone(), true)]);

    let env = moto.env();
    let restored = tmp.path().join("restored");
    let out = run_cli(
        &[
            "restore",
            "--src",
            "s3://backups/bk",
            "--dest",
            restored.to_str().unwrap(),
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&ids[2]));
    for (rel, bytes) in files() {
        assert_eq!(std::fs::read(restored.join(rel)).unwrap(), bytes);
    }

    let fetched = tmp.path().join("fetched");
    let source = format!("s3://backups/bk/{}", ids[1]);
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &source,
            "--dest",
            fetched.to_str().unwrap(),
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(fetched.join("tok/b.json")).unwrap(),
        files()[1].1
    );
}

#[tokio::test]
async fn restore_refuses_a_corrupted_object_in_the_bucket() {
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_bucket("backups").await.unwrap();
    let (tmp, model) = model_dir(&files()).await;
    let id = backup(&moto, &model, "2").await;
    let mut bad = files()[0].1.clone();
    bad[123] ^= 1;
    s3.put_bytes("backups", &format!("bk/{id}/a.gguf"), bad.clone())
        .await
        .unwrap();
    let env = moto.env();
    let restored = tmp.path().join("restored");
    let out = run_cli(
        &[
            "restore",
            "--src",
            "s3://backups/bk",
            "--generation",
            &id,
            "--dest",
            restored.to_str().unwrap(),
        ],
        &as_refs(&env),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let expected = format!(
        "a.gguf: SHA256 mismatch: expected {}, got {}",
        sha256(&files()[0].1),
        sha256(&bad)
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(!restored.join("a.gguf").exists());
}

#[tokio::test]
async fn an_interrupted_s3_backup_is_never_the_latest() {
    let moto = Moto::start();
    moto.client().create_bucket("backups").await.unwrap();
    let (tmp, model) = model_dir(&files()).await;
    let first = backup(&moto, &model, "3").await;

    // tok/b.json is uploaded after a.gguf: feed it through a FIFO and kill mid-upload.
    let fifo = model.join("tok/b.json");
    std::fs::remove_file(&fifo).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let env = moto.env();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args([
            "backup",
            "--src",
            model.to_str().unwrap(),
            "--dest",
            "s3://backups/bk",
            "--keep",
            "3",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let _ = w.write_all(&files()[1].1[..1000]);
        std::thread::sleep(Duration::from_secs(2));
    });
    // Wait until a.gguf of the new generation is stored: the process is then blocked on the FIFO.
    loop {
        let gens = generations(&moto, "backups").await;
        if gens.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();
    writer.join().unwrap();
    let gens = generations(&moto, "backups").await;
    assert_eq!(gens.len(), 2, "{gens:?}");
    assert_eq!(gens[0], (first.clone(), true));
    assert!(
        !gens[1].1,
        "the interrupted generation must not be complete: {gens:?}"
    );

    let restored = tmp.path().join("restored");
    let out = run_cli(
        &[
            "restore",
            "--src",
            "s3://backups/bk",
            "--dest",
            restored.to_str().unwrap(),
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&first), "{}", stdout(&out));
}

#[tokio::test]
async fn large_files_go_up_in_parts_and_a_changed_one_is_aborted() {
    let moto = Moto::start();
    moto.client().create_bucket("backups").await.unwrap();
    let big = pattern(11 << 20, 7); // 11 MiB: three parts of at most 5 MiB
    let (tmp, model) = model_dir(&[("big.gguf", big.clone())]).await;
    let mut env = moto.env();
    env.push(("DSR_S3_PART_MB", "5".into()));
    env.push(("RUST_LOG", "deepseek_model_files=debug".into()));
    let args = [
        "backup",
        "--src",
        model.to_str().unwrap(),
        "--dest",
        "s3://backups/bk",
        "--keep",
        "2",
    ];
    let out = run_cli(&args, &as_refs(&env)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("part uploaded").count(),
        3,
        "{}",
        stderr(&out)
    );
    let id = stdout(&out).trim().to_string();

    let restored = tmp.path().join("restored");
    let out = run_cli(
        &[
            "restore",
            "--src",
            "s3://backups/bk",
            "--dest",
            restored.to_str().unwrap(),
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(restored.join("big.gguf")).unwrap(), big);

    let mut changed = big.clone();
    changed[(11 << 20) - 10] ^= 1;
    std::fs::write(model.join("big.gguf"), &changed).unwrap();
    let out = run_cli(&args, &as_refs(&env)).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("big.gguf: SHA256 mismatch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(generations(&moto, "backups").await, [(id, true)]);
}
