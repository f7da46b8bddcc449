//! `fetch` from a local directory (copied, verified) and `pvc://` (verified in place).
#![allow(clippy::unwrap_used)]

mod fetch_support;

use fetch_support::{pattern, run_cli, sha256, stderr, tree};

#[tokio::test]
async fn verifies_a_pvc_in_place_and_fails_naming_a_changed_file() {
    let mount = tempfile::tempdir().unwrap();
    let sub = mount.path().join("smollm2");
    std::fs::create_dir(&sub).unwrap();
    let a = pattern(10_000, 1);
    std::fs::write(sub.join("m.gguf"), &a).unwrap();
    let d = mount.path().to_str().unwrap();
    let pin = format!("m.gguf={}", sha256(&a));
    let out = run_cli(
        &[
            "fetch",
            "--source",
            "pvc://store/smollm2",
            "--dest",
            d,
            "--sha256",
            &pin,
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(&sub),
        [
            "deepseek-manifest.json",
            "deepseek-manifest.sha256",
            "m.gguf"
        ]
    );

    std::fs::write(sub.join("m.gguf"), pattern(10_000, 2)).unwrap();
    let out = run_cli(
        &[
            "fetch",
            "--source",
            "pvc://store/smollm2",
            "--dest",
            d,
            "--sha256",
            &pin,
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("m.gguf: SHA256 mismatch"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn copies_a_local_directory_checking_a_sha256sum_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let a = pattern(4096, 3);
    std::fs::write(src.join("a.bin"), &a).unwrap();
    let sums = tmp.path().join("SHA256SUMS");
    std::fs::write(&sums, format!("{}  a.bin\n", sha256(&a))).unwrap();
    let dest = tmp.path().join("dest");
    let out = run_cli(
        &[
            "fetch",
            "--source",
            src.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
            "--manifest",
            sums.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), a);

    std::fs::write(&sums, format!("{}  a.bin\n", sha256(b"other"))).unwrap();
    let dest2 = tmp.path().join("dest2");
    let out = run_cli(
        &[
            "fetch",
            "--source",
            src.to_str().unwrap(),
            "--dest",
            dest2.to_str().unwrap(),
            "--manifest",
            sums.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(tree(&dest2).is_empty(), "{:?}", tree(&dest2));
}
