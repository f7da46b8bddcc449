//! `fetch --source s3://BUCKET/PREFIX` against a real local S3-compatible server (`moto_server`).
#![allow(clippy::unwrap_used)]

mod fetch_support;

use fetch_support::{as_refs, pattern, run_cli, sha256, stderr, tree, Moto};

#[tokio::test]
async fn fetches_every_object_under_a_prefix_and_checks_pins() {
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_bucket("models").await.unwrap();
    let a = pattern(1_500_000, 1);
    let b = pattern(10, 2);
    s3.put_bytes("models", "tiny/v1/model.gguf", a.clone())
        .await
        .unwrap();
    s3.put_bytes("models", "tiny/v1/sub/tokenizer.json", b.clone())
        .await
        .unwrap();
    s3.put_bytes("models", "tiny/v2/other.gguf", b.clone())
        .await
        .unwrap();
    let env = moto.env();
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let out = run_cli(
        &["fetch", "--source", "s3://models/tiny/v1/", "--dest", d],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(dest.path()),
        [
            "deepseek-manifest.json",
            "deepseek-manifest.sha256",
            "model.gguf",
            "sub/tokenizer.json"
        ]
    );
    assert_eq!(std::fs::read(dest.path().join("model.gguf")).unwrap(), a);

    // A pin that does not match what the bucket holds: refused, nothing at the final name.
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let pin = format!("sub/tokenizer.json={}", sha256(b"not it"));
    let out = run_cli(
        &[
            "fetch",
            "--source",
            "s3://models/tiny/v1",
            "--dest",
            d,
            "--sha256",
            &pin,
            "--s3-endpoint",
            &moto.endpoint,
        ],
        &as_refs(&env[1..]),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sub/tokenizer.json: SHA256 mismatch"),
        "{}",
        stderr(&out)
    );
    assert!(!dest.path().join("sub/tokenizer.json").exists());
}

#[tokio::test]
async fn a_missing_object_is_a_clear_404() {
    let moto = Moto::start();
    moto.client().create_bucket("empty").await.unwrap();
    let env = moto.env();
    let dest = tempfile::tempdir().unwrap();
    let pin = format!("m.gguf={}", sha256(b"x"));
    let out = run_cli(
        &[
            "fetch",
            "--source",
            "s3://empty/p",
            "--dest",
            dest.path().to_str().unwrap(),
            "--sha256",
            &pin,
        ],
        &as_refs(&env),
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/empty/p/m.gguf: HTTP 404"),
        "{}",
        stderr(&out)
    );
}

/// moto with IAM enforcement checks every SigV4 signature (LIST and multipart carry query
/// strings, which the documentation vector in the unit tests does not): the right key works
/// end to end, a wrong secret is refused.
#[tokio::test]
async fn signatures_are_accepted_by_a_server_that_checks_them() {
    let moto = Moto::start_with_auth();
    moto.client().create_bucket("signed").await.unwrap();
    let big = pattern(11 << 20, 5);
    let (tmp, model) = fetch_support::model_dir(&[("dir/m x.gguf", big.clone())]).await;
    let mut env = moto.env();
    env.push(("DSR_S3_PART_MB", "5".into()));
    let backup = [
        "backup",
        "--src",
        model.to_str().unwrap(),
        "--dest",
        "s3://signed/b k",
        "--keep",
        "1",
    ];
    let out = run_cli(&backup, &as_refs(&env)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let generation = fetch_support::stdout(&out).trim().to_string();
    let dest = tmp.path().join("fetched");
    let source = format!("s3://signed/b k/{generation}");
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &source,
            "--dest",
            dest.to_str().unwrap(),
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("dir/m x.gguf")).unwrap(), big);
    let restored = tmp.path().join("restored");
    let out = run_cli(
        &[
            "restore",
            "--src",
            "s3://signed/b k",
            "--dest",
            restored.to_str().unwrap(),
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(restored.join("dir/m x.gguf")).unwrap(), big);

    env[2] = ("AWS_SECRET_ACCESS_KEY", "wrong".into());
    let out = run_cli(&backup, &as_refs(&env)).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("SignatureDoesNotMatch"),
        "{}",
        stderr(&out)
    );
}
