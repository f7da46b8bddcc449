//! `fetch --source hf://REPO@REVISION` against a local fake of the Hugging Face Hub's API shape
//! (`/api/models/REPO/revision/REV` listing, `/REPO/resolve/REV/PATH` files, bearer token).
#![allow(clippy::unwrap_used)]

mod fetch_support;

use fetch_support::{pattern, run_cli, sha256, stderr, tree, Behaviour, FileServer};

const REV: &str = "0123456789abcdef0123456789abcdef01234567";

fn api_listing(config: &[u8], weights: &[u8], weights_sha: &str) -> Vec<u8> {
    serde_json::json!({
        "id": "org/tiny",
        "sha": REV,
        "siblings": [
            {"rfilename": ".gitattributes", "size": 10},
            {"rfilename": "config.json", "size": config.len(), "blobId": "abc"},
            {"rfilename": "model.safetensors", "size": weights.len(),
             "lfs": {"sha256": weights_sha, "size": weights.len(), "pointerSize": 134}}
        ]
    })
    .to_string()
    .into_bytes()
}

async fn hub(weights_sha: Option<String>) -> (FileServer, Vec<u8>, Vec<u8>) {
    let server = FileServer::start().await;
    let config = br#"{"architectures":["LlamaForCausalLM"]}"#.to_vec();
    let weights = pattern(200_000, 9);
    let sha = weights_sha.unwrap_or_else(|| sha256(&weights));
    let listing = api_listing(&config, &weights, &sha);
    server.add(
        &format!("api/models/org/tiny/revision/{REV}"),
        listing,
        Behaviour::Normal,
    );
    server.add(
        &format!("org/tiny/resolve/{REV}/config.json"),
        config.clone(),
        Behaviour::Normal,
    );
    server.add(
        &format!("org/tiny/resolve/{REV}/model.safetensors"),
        weights.clone(),
        Behaviour::Normal,
    );
    (server, config, weights)
}

#[tokio::test]
async fn lists_files_from_the_hub_api_and_downloads_them_with_the_token() {
    let (server, config, weights) = hub(None).await;
    let dest = tempfile::tempdir().unwrap();
    let source = format!("hf://org/tiny@{REV}");
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &source,
            "--dest",
            dest.path().to_str().unwrap(),
        ],
        &[("HF_ENDPOINT", &server.url), ("HF_TOKEN", "hf_secret")],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(dest.path()),
        [
            "config.json",
            "deepseek-manifest.json",
            "deepseek-manifest.sha256",
            "model.safetensors"
        ]
    );
    assert_eq!(
        std::fs::read(dest.path().join("config.json")).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read(dest.path().join("model.safetensors")).unwrap(),
        weights
    );
    let api = server.seen(&format!("api/models/org/tiny/revision/{REV}"));
    assert_eq!(api.len(), 1);
    let file = server.seen(&format!("org/tiny/resolve/{REV}/model.safetensors"));
    for seen in api.iter().chain(&file) {
        assert_eq!(seen.authorization.as_deref(), Some("Bearer hf_secret"));
    }
    let sums = std::fs::read_to_string(dest.path().join("deepseek-manifest.sha256")).unwrap();
    assert!(
        sums.contains(&format!("{}  model.safetensors", sha256(&weights))),
        "{sums}"
    );
    assert!(
        sums.contains(&format!("{}  config.json", sha256(&config))),
        "{sums}"
    );
}

#[tokio::test]
async fn rejects_a_file_that_does_not_match_its_lfs_digest() {
    let wrong = sha256(b"something else");
    let (server, _, _) = hub(Some(wrong.clone())).await;
    let dest = tempfile::tempdir().unwrap();
    let source = format!("hf://org/tiny@{REV}");
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &source,
            "--dest",
            dest.path().to_str().unwrap(),
        ],
        &[("HF_ENDPOINT", &server.url)],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!(
        "model.safetensors: SHA256 mismatch: expected {wrong}"
    )));
    assert!(!dest.path().join("model.safetensors").exists());
}

#[tokio::test]
async fn pins_select_the_files_of_a_repository() {
    let (server, config, _) = hub(None).await;
    let dest = tempfile::tempdir().unwrap();
    let source = format!("hf://org/tiny@{REV}");
    let pin = format!("config.json={}", sha256(&config));
    let out = run_cli(
        &[
            "fetch",
            "--source",
            &source,
            "--dest",
            dest.path().to_str().unwrap(),
            "--sha256",
            &pin,
        ],
        &[("HF_ENDPOINT", &server.url)],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        tree(dest.path()),
        [
            "config.json",
            "deepseek-manifest.json",
            "deepseek-manifest.sha256"
        ]
    );
    assert!(server
        .seen(&format!("api/models/org/tiny/revision/{REV}"))
        .is_empty());
}
