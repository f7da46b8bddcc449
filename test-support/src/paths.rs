//! Where things live in the workspace, independent of which crate's test asks.

use std::path::{Path, PathBuf};

/// The real model's file, relative to the workspace root.
pub const SMOLLM2_GGUF: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The workspace root (this crate lives directly below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The real SmolLM2 GGUF that `make model` fetches; panics with the fix when it is absent.
pub fn model_path() -> PathBuf {
    let p = workspace_root().join(SMOLLM2_GGUF);
    assert!(
        p.exists(),
        "{} is missing: run `make model` (or `make test`)",
        p.display()
    );
    p
}

/// A program of the test virtualenv (`.venv/bin/NAME`, made by `make test-deps`).
pub fn venv_bin(name: &str) -> PathBuf {
    workspace_root().join(".venv/bin").join(name)
}
