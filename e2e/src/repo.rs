//! Paths of the checkout (the tests read the chart, Dockerfiles, docs and examples in place)
//! and the project virtualenv's Python that `make test-deps` provides.

use std::path::{Path, PathBuf};

/// The repository root (the workspace this crate lives in).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A file of the checkout, by path relative to the root.
pub fn path(relative: &str) -> PathBuf {
    root().join(relative)
}

/// Reads a file of the checkout; the error names the file.
pub fn read(relative: &str) -> anyhow::Result<String> {
    let p = path(relative);
    std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
}

/// `.venv/bin/python`, which `make test-deps` (scripts/test-deps.sh) creates with the packages
/// the tests need; an error telling how to get it when it is missing.
pub fn python() -> anyhow::Result<PathBuf> {
    let p = path(".venv/bin/python");
    if p.exists() {
        Ok(p)
    } else {
        anyhow::bail!("{} is missing: run `make test-deps`", p.display())
    }
}
