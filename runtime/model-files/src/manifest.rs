//! The manifest: which files make a model, with their size and SHA256.
//!
//! Written as JSON (`deepseek-manifest.json`, the authoritative copy, with sizes) and as
//! sha256sum text (`deepseek-manifest.sha256`, so `sha256sum -c deepseek-manifest.sha256` works
//! in the model directory). Either form is accepted as input (`fetch --manifest FILE`); the text
//! form has no sizes. Paths are relative, '/'-separated, and may never leave the model directory.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ModelFilesError, Result};

/// File name of the JSON manifest, next to the model files.
pub const MANIFEST_NAME: &str = "deepseek-manifest.json";
/// File name of the sha256sum-compatible copy.
pub const SUMS_NAME: &str = "deepseek-manifest.sha256";

/// One file of a model. `size` is unknown only for pins given without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// A manifest with the files sorted by path (one order for every writer).
    pub fn new(mut files: Vec<FileEntry>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Self { version: 1, files }
    }

    /// Parses JSON or sha256sum text; `origin` names the manifest in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let bad = |reason: String| ModelFilesError::BadManifest {
            path: origin.to_string(),
            reason,
        };
        let mut manifest = if text.trim_start().starts_with('{') {
            serde_json::from_str::<Manifest>(text).map_err(|e| bad(e.to_string()))?
        } else {
            let mut files = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                // `HEX  PATH` (text mode) or `HEX *PATH` (binary mode).
                let (hex, rest) = line
                    .split_once(' ')
                    .ok_or_else(|| bad(format!("line {}: expected `SHA256  PATH`", n + 1)))?;
                let path = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'));
                let path = path.unwrap_or(rest);
                files.push(FileEntry {
                    path: path.to_string(),
                    size: None,
                    sha256: hex.to_string(),
                });
            }
            Manifest::new(files)
        };
        for f in &mut manifest.files {
            f.sha256 = f.sha256.to_ascii_lowercase();
        }
        manifest.validate(origin)?;
        Ok(manifest)
    }

    /// Every path safe and unique, every digest 64 hex digits (lower-cased on the way in).
    fn validate(&self, origin: &str) -> Result<()> {
        let mut seen = BTreeMap::new();
        for f in &self.files {
            validate_rel_path(&f.path).map_err(|reason| ModelFilesError::BadManifest {
                path: origin.to_string(),
                reason,
            })?;
            if !is_sha256_hex(&f.sha256) {
                return Err(ModelFilesError::BadManifest {
                    path: origin.to_string(),
                    reason: format!("{}: {:?} is not a SHA256 (64 hex digits)", f.path, f.sha256),
                });
            }
            if seen.insert(f.path.clone(), ()).is_some() {
                return Err(ModelFilesError::BadManifest {
                    path: origin.to_string(),
                    reason: format!("{} is listed twice", f.path),
                });
            }
        }
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelFilesError::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn to_sha256sums(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha256, f.path))
            .collect()
    }

    /// Writes both forms into `dir` (each via a temporary name and a rename).
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        write_atomically(&dir.join(MANIFEST_NAME), self.to_json().as_bytes())?;
        write_atomically(&dir.join(SUMS_NAME), self.to_sha256sums().as_bytes())
    }
}

/// Whether a file name is one of the manifest's own (never listed in a manifest).
pub fn is_manifest_file(path: &str) -> bool {
    path == MANIFEST_NAME || path == SUMS_NAME
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A path inside the model directory: relative, no `..`, no empty or `.` components.
pub fn validate_rel_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.contains('\\') {
        return Err(format!("{path:?}: must be a relative '/'-separated path"));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("{path:?}: must stay inside the model directory"));
    }
    if path.ends_with(".partial") {
        return Err(format!("{path:?}: the .partial suffix is reserved"));
    }
    Ok(())
}

/// Writes `bytes` to `path` through `path.tmp` and a rename, so readers never see half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| ModelFilesError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelFilesError::io(path, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

    #[test]
    fn parses_sha256sum_text_in_text_and_binary_mode() {
        let m = Manifest::parse(&format!("{A}  b.gguf\n{A} *a/c.json\n"), "x").unwrap();
        let paths: Vec<_> = m.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a/c.json", "b.gguf"]);
        assert_eq!(m.files[0].size, None);
    }

    #[test]
    fn json_round_trips_with_sizes() {
        let m = Manifest::new(vec![FileEntry {
            path: "m.gguf".into(),
            size: Some(7),
            sha256: A.into(),
        }]);
        assert_eq!(Manifest::parse(&m.to_json(), "x").unwrap(), m);
        assert_eq!(m.to_sha256sums(), format!("{A}  m.gguf\n"));
    }

    #[test]
    fn rejects_a_path_that_leaves_the_model_directory() {
        let err = Manifest::parse(&format!("{A}  ../etc/passwd\n"), "x").unwrap_err();
        assert!(matches!(err, ModelFilesError::BadManifest { .. }), "{err}");
        assert!(validate_rel_path("/abs").is_err());
        assert!(validate_rel_path("a//b").is_err());
        assert!(validate_rel_path("a/b.gguf").is_ok());
    }

    #[test]
    fn rejects_a_digest_that_is_not_64_hex_digits() {
        let err = Manifest::parse("abc  m.gguf\n", "x").unwrap_err();
        assert!(matches!(err, ModelFilesError::BadManifest { .. }), "{err}");
    }

    #[test]
    fn rejects_a_file_listed_twice() {
        let err = Manifest::parse(&format!("{A}  m\n{A}  m\n"), "x").unwrap_err();
        assert!(matches!(err, ModelFilesError::BadManifest { .. }), "{err}");
    }
}
