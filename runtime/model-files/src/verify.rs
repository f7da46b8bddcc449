//! Checking files against a manifest, streamed: what `serve` runs before loading a model and
//! what `fetch`, `backup` and `restore` run on every file they touch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::download::Expect;
use super::hash::sha256_file;
use super::manifest::{Manifest, MANIFEST_NAME};
use super::{ModelFilesError, Result};

/// Size first (cheap to explain), then digest.
pub fn check(rel: &str, expect: &Expect, size: u64, actual: &str) -> Result<()> {
    if let Some(want) = expect.size.filter(|s| *s != size) {
        return Err(ModelFilesError::SizeMismatch {
            path: rel.to_string(),
            expected: want,
            actual: size,
        });
    }
    match &expect.sha256 {
        Some(want) if want != actual => Err(ModelFilesError::DigestMismatch {
            path: rel.to_string(),
            expected: want.clone(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Every file of `manifest` under `dir` exists with its size and SHA256.
pub fn verify_dir(dir: &Path, manifest: &Manifest) -> Result<()> {
    for f in &manifest.files {
        let path = dir.join(&f.path);
        if !path.is_file() {
            return Err(ModelFilesError::Missing {
                path: path.display().to_string(),
            });
        }
        let (size, actual) = sha256_file(&path)?;
        let expect = Expect {
            sha256: Some(f.sha256.clone()),
            size: f.size,
        };
        check(&path.display().to_string(), &expect, size, &actual)?;
    }
    Ok(())
}

/// The manifest governing `model` (a file or a directory): the first `deepseek-manifest.json`
/// in the model's directory or one of its parents (a safetensors model may sit in a
/// subdirectory of what `fetch` filled).
pub fn find_manifest(model: &Path) -> Option<PathBuf> {
    let start = if model.is_dir() {
        model
    } else {
        model.parent()?
    };
    let start = start.canonicalize().ok()?;
    start
        .ancestors()
        .map(|d| d.join(MANIFEST_NAME))
        .find(|p| p.is_file())
}

/// What `serve` runs before loading: verifies the files of the manifest (given, or found next
/// to the model). Returns the manifest used, `None` when there is none.
pub fn verify_model(model: &Path, manifest: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(path) = manifest
        .map(Path::to_path_buf)
        .or_else(|| find_manifest(model))
    else {
        return Ok(None);
    };
    let m = Manifest::read(&path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let started = Instant::now();
    verify_dir(dir, &m)?;
    let bytes: u64 = m.files.iter().filter_map(|f| f.size).sum();
    tracing::info!(
        manifest = %path.display(),
        files = m.files.len(),
        bytes,
        secs = started.elapsed().as_secs_f64(),
        "model files verified"
    );
    Ok(Some(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hash::sha256_bytes;
    use crate::manifest::FileEntry;

    fn model_dir() -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/w.bin"), b"weights").unwrap();
        let m = Manifest::new(vec![FileEntry {
            path: "sub/w.bin".into(),
            size: Some(7),
            sha256: sha256_bytes(b"weights"),
        }]);
        m.write_to_dir(dir.path()).unwrap();
        (dir, m)
    }

    #[test]
    fn finds_the_manifest_in_a_parent_of_the_model() {
        let (dir, _) = model_dir();
        let found = find_manifest(&dir.path().join("sub/w.bin")).unwrap();
        assert_eq!(
            found,
            dir.path().canonicalize().unwrap().join(MANIFEST_NAME)
        );
        assert!(verify_model(&dir.path().join("sub"), None)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_changed_byte_is_a_digest_mismatch_naming_the_file() {
        let (dir, m) = model_dir();
        std::fs::write(dir.path().join("sub/w.bin"), b"weighTs").unwrap();
        let err = verify_dir(dir.path(), &m).unwrap_err();
        let ModelFilesError::DigestMismatch { path, expected, .. } = &err else {
            panic!("{err}");
        };
        assert!(path.ends_with("sub/w.bin"));
        assert_eq!(expected, &sha256_bytes(b"weights"));
    }

    #[test]
    fn a_truncated_file_is_a_size_mismatch_and_a_deleted_one_is_missing() {
        let (dir, m) = model_dir();
        std::fs::write(dir.path().join("sub/w.bin"), b"weig").unwrap();
        let err = verify_dir(dir.path(), &m).unwrap_err();
        assert!(matches!(
            err,
            ModelFilesError::SizeMismatch {
                expected: 7,
                actual: 4,
                ..
            }
        ));
        std::fs::remove_file(dir.path().join("sub/w.bin")).unwrap();
        let err = verify_dir(dir.path(), &m).unwrap_err();
        assert!(matches!(err, ModelFilesError::Missing { .. }));
    }
}
