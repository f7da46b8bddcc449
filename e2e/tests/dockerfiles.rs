//! The two images: every path they copy exists (and every workspace member is copied), base
//! images are pinned, the shipped stage runs as a non-root user, and each builds the right
//! binary with the right features (CPU by default, CUDA through the `cuda` feature).

use deepseek_e2e::dockerfile::{is_non_root, is_pinned, Dockerfile};
use deepseek_e2e::repo;
use serde_json::Value;

type TestResult = anyhow::Result<()>;

const FILES: [&str; 2] = ["Dockerfile.runtime", "Dockerfile.operator"];

fn load(name: &str) -> anyhow::Result<Dockerfile> {
    Ok(Dockerfile::parse(&repo::read(name)?))
}

fn workspace_members() -> anyhow::Result<Vec<String>> {
    let manifest: Value = toml_members(&repo::read("Cargo.toml")?);
    Ok(manifest
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect())
}

/// Paths of `[patch.crates-io]` entries (vendored crates): cargo resolves them for every build
/// of the workspace, so an image that does not copy them cannot build at all.
fn patch_paths() -> anyhow::Result<Vec<String>> {
    let text = repo::read("Cargo.toml")?;
    let Some((_, patches)) = text.split_once("[patch.crates-io]") else {
        return Ok(Vec::new());
    };
    Ok(patches
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split_once("path = \"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split('"').next().map(str::to_string))
        .collect())
}

/// `members = [...]` of the workspace manifest (a one-line array, as cargo writes it).
fn toml_members(text: &str) -> Value {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    serde_json::from_str(&line).unwrap_or(Value::Null)
}

fn ignored_by_dockerignore(path: &str) -> anyhow::Result<bool> {
    let ignore = repo::read(".dockerignore")?;
    Ok(ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|pattern| pattern.trim_end_matches('/') == path.trim_end_matches('/')))
}

#[test]
fn every_copied_path_exists_and_every_workspace_member_is_copied() -> TestResult {
    let mut members = workspace_members()?;
    assert!(members.len() >= 4, "members: {members:?}");
    members.extend(patch_paths()?);
    assert!(
        members.iter().any(|m| m == "vendor/candle-core"),
        "{members:?}"
    );
    for name in FILES {
        let d = load(name)?;
        let mut sources = Vec::new();
        for copy in d.all("COPY") {
            if copy.args.contains("--from=") {
                continue;
            }
            let parts: Vec<&str> = copy.args.split_whitespace().collect();
            sources.extend(
                parts[..parts.len().saturating_sub(1)]
                    .iter()
                    .map(|s| s.to_string()),
            );
        }
        for src in &sources {
            assert!(
                repo::path(src).exists(),
                "{name} copies {src}, which does not exist"
            );
            assert!(
                !ignored_by_dockerignore(src)?,
                "{name} copies {src}, which .dockerignore drops"
            );
        }
        for file in ["Cargo.toml", "Cargo.lock"] {
            assert!(
                sources.iter().any(|s| s == file),
                "{name} does not copy {file}"
            );
        }
        for m in &members {
            // A member is copied by its own COPY or by one of a folder holding it
            // (`COPY runtime runtime` brings every crate under runtime/).
            let copied = |s: &String| {
                let s = s.trim_end_matches('/');
                s == m || m.starts_with(&format!("{s}/"))
            };
            assert!(
                sources.iter().any(copied),
                "{name} does not copy workspace member or patched crate {m}: `cargo build --locked` fails without it"
            );
        }
    }
    Ok(())
}

#[test]
fn base_images_are_pinned_to_versions_in_both_files_and_the_cuda_instructions() -> TestResult {
    for name in FILES {
        let d = load(name)?;
        let stage_names: Vec<String> = d.stages().into_iter().filter_map(|(_, n)| n).collect();
        for (image, _) in d.stages() {
            if stage_names.contains(&image) {
                continue;
            }
            assert!(
                is_pinned(&image),
                "{name}: base image {image} is not pinned to a version"
            );
        }
        for comment in &d.comments {
            for word in comment.split_whitespace() {
                if let Some(image) = word
                    .strip_prefix("BUILD_BASE=")
                    .or(word.strip_prefix("RUN_BASE="))
                {
                    assert!(
                        is_pinned(image),
                        "{name}: documented base {image} is not pinned"
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_shipped_stage_runs_as_a_non_root_user_with_the_binary_as_entrypoint() -> TestResult {
    for (name, binary) in [
        ("Dockerfile.runtime", "deepseek-runtime"),
        ("Dockerfile.operator", "deepseek-operator"),
    ] {
        let d = load(name)?;
        let last = d.final_stage();
        let user = last.iter().rev().find(|i| i.keyword == "USER");
        let user = user.map(|u| u.args.clone()).unwrap_or_default();
        assert!(is_non_root(&user), "{name}: final stage USER is {user:?}");
        let entry = last
            .iter()
            .find(|i| i.keyword == "ENTRYPOINT")
            .map(|i| i.args.clone());
        assert_eq!(
            entry,
            Some(format!("[\"/usr/local/bin/{binary}\"]")),
            "{name}"
        );
        for i in last {
            assert!(
                !(i.keyword == "COPY" && (i.args.contains(".gguf") || i.args.contains("models"))),
                "{name} must not bake a model into the image: {}",
                i.args
            );
        }
    }
    for pattern in [
        "target/",
        "models/",
        ".venv/",
        "**/*.gguf",
        "**/*.safetensors",
    ] {
        assert!(
            ignored_by_dockerignore(pattern)?,
            ".dockerignore misses {pattern}"
        );
    }
    Ok(())
}

fn cargo_builds(d: &Dockerfile) -> Vec<String> {
    d.all("RUN")
        .into_iter()
        .filter(|i| i.args.contains("cargo build"))
        .map(|i| i.args.clone())
        .collect()
}

#[test]
fn the_operator_image_builds_only_the_operator_binary_statically() -> TestResult {
    let builds = cargo_builds(&load("Dockerfile.operator")?);
    assert_eq!(builds.len(), 1, "{builds:?}");
    let b = &builds[0];
    for flag in [
        "--release",
        "--locked",
        "-p deepseek-operator",
        "unknown-linux-musl",
    ] {
        assert!(b.contains(flag), "operator build lacks {flag}: {b}");
    }
    assert!(!b.contains("--features"), "{b}");
    Ok(())
}

#[test]
fn the_runtime_image_is_cpu_by_default_and_cuda_through_the_cuda_feature() -> TestResult {
    let d = load("Dockerfile.runtime")?;
    let builds = cargo_builds(&d);
    assert_eq!(builds.len(), 1, "{builds:?}");
    let b = &builds[0];
    for flag in [
        "--release",
        "--locked",
        "-p deepseek-runtime",
        "--features \"${FEATURES}\"",
    ] {
        assert!(b.contains(flag), "runtime build lacks {flag}: {b}");
    }
    assert_eq!(
        d.arg_defaults().get("FEATURES").map(String::as_str),
        Some(""),
        "CPU by default"
    );
    let docs = d.comments.join("\n");
    assert!(
        docs.contains("--build-arg FEATURES=cuda"),
        "CUDA build not documented:\n{docs}"
    );
    assert!(docs.contains("BUILD_BASE=nvidia/cuda:") && docs.contains("RUN_BASE=nvidia/cuda:"));
    // The feature the CUDA build names must be the runtime's CUDA switch: the binary crate's
    // `cuda` forwards to the engine crate's, which turns on `candle-core/cuda`.
    let cuda_feature = |manifest: &str| -> anyhow::Result<String> {
        let text = repo::read(manifest)?;
        text.lines()
            .find(|l| l.trim_start().starts_with("cuda ") || l.trim_start().starts_with("cuda="))
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("{manifest} declares no `cuda` feature"))
    };
    let binary = cuda_feature("runtime/cli/Cargo.toml")?;
    assert!(
        binary.contains("deepseek-engine/cuda"),
        "binary feature: {binary}"
    );
    let engine = cuda_feature("runtime/engine/Cargo.toml")?;
    assert!(
        engine.contains("candle-core/cuda"),
        "engine feature: {engine}"
    );
    Ok(())
}
