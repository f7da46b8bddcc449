//! `fetch`: decides which files to bring (pins from `--sha256` / `--manifest`, else the
//! source's own list), brings each one verified, and writes the manifest next to them.

use std::path::{Path, PathBuf};

use super::download::{Expect, RetryPolicy};
use super::manifest::{validate_rel_path, FileEntry, Manifest};
use super::redact;
use super::sources::{RemoteFile, S3Flags, Source};
use super::{ModelFilesError, Result};

#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    pub source: String,
    pub dest: PathBuf,
    /// Pins file: JSON manifest or sha256sum text.
    pub manifest: Option<PathBuf>,
    /// `PATH=HEX` pins.
    pub sha256: Vec<String>,
    pub s3: S3Flags,
    pub policy: RetryPolicy,
    /// Allow plain `http://` sources and endpoints (else `https://` only).
    pub allow_insecure_http: bool,
}

/// Parses `PATH=HEX`.
pub fn parse_pin(pin: &str) -> Result<FileEntry> {
    let bad = |reason: String| ModelFilesError::BadManifest {
        path: "--sha256".into(),
        reason,
    };
    let (path, hex) = pin
        .rsplit_once('=')
        .ok_or_else(|| bad(format!("{pin:?}: expected PATH=SHA256")))?;
    validate_rel_path(path).map_err(bad)?;
    if !super::manifest::is_sha256_hex(hex) {
        return Err(bad(format!(
            "{path}: {hex:?} is not a SHA256 (64 hex digits)"
        )));
    }
    Ok(FileEntry {
        path: path.to_string(),
        size: None,
        sha256: hex.to_ascii_lowercase(),
    })
}

/// The pins from both flags (`--sha256` wins over `--manifest` for the same path).
pub fn pins(opts: &FetchOptions) -> Result<Vec<FileEntry>> {
    let mut files: Vec<FileEntry> = match &opts.manifest {
        Some(p) => Manifest::read(p)?.files,
        None => Vec::new(),
    };
    for pin in &opts.sha256 {
        let entry = parse_pin(pin)?;
        files.retain(|f| f.path != entry.path);
        files.push(entry);
    }
    Ok(files)
}

/// What to bring: the pins (sizes filled in from the source's list where it has them), or the
/// source's list when nothing is pinned.
async fn plan(
    source: &Source,
    pinned: Vec<FileEntry>,
    uri: &str,
    policy: &RetryPolicy,
) -> Result<Vec<RemoteFile>> {
    if !pinned.is_empty() {
        return Ok(pinned.iter().map(RemoteFile::from).collect());
    }
    let uri = &redact::url(uri);
    let listed = source.listing(policy).await?.ok_or_else(|| {
        ModelFilesError::NoFiles(format!(
            "{uri} publishes no file list: pin the files with --sha256 PATH=SHA256 or --manifest FILE"
        ))
    })?;
    if listed.is_empty() {
        return Err(ModelFilesError::NoFiles(format!("{uri}: no files found")));
    }
    for f in &listed {
        validate_rel_path(&f.path).map_err(|reason| ModelFilesError::BadManifest {
            path: uri.to_string(),
            reason,
        })?;
        if f.sha256.is_none() {
            tracing::warn!(file = %f.path, "no SHA256 pinned or published: recording the digest that arrives");
        }
    }
    Ok(listed)
}

/// Brings every file into `opts.dest` (or verifies it in place) and writes the manifest.
pub async fn fetch(opts: &FetchOptions) -> Result<Manifest> {
    let http = http_client(opts.allow_insecure_http)?;
    let source = Source::parse(
        &opts.source,
        &opts.dest,
        &opts.s3,
        http,
        opts.allow_insecure_http,
    )?;
    let files = plan(&source, pins(opts)?, &opts.source, &opts.policy).await?;
    tracing::info!(source = %redact::url(&opts.source), dest = %opts.dest.display(), files = files.len(), "fetching");
    if !source.in_place() {
        std::fs::create_dir_all(&opts.dest).map_err(|e| ModelFilesError::io(&opts.dest, e))?;
    }
    let mut entries = Vec::with_capacity(files.len());
    for f in &files {
        let expect = Expect {
            sha256: f.sha256.clone(),
            size: f.size,
        };
        let entry = source
            .fetch(&f.path, &opts.dest, &expect, &opts.policy)
            .await?;
        tracing::info!(file = %entry.path, sha256 = %entry.sha256, bytes = entry.size, "verified");
        entries.push(entry);
    }
    let manifest = Manifest::new(entries);
    write_manifest(&source, &opts.dest, &manifest)?;
    Ok(manifest)
}

/// Next to the files; a read-only PVC verified in place may refuse it, which is fine.
fn write_manifest(source: &Source, dest: &Path, manifest: &Manifest) -> Result<()> {
    let dir = match source {
        Source::Local(l) if l.in_place() => l.root().to_path_buf(),
        _ => dest.to_path_buf(),
    };
    match manifest.write_to_dir(&dir) {
        Err(e) if source.in_place() => {
            tracing::warn!(error = %e, "files verified in place; manifest not written");
            Ok(())
        }
        other => other,
    }
}

/// The one HTTP client of a run: connect timeout here, request and stall timeouts per download.
/// A redirect from `https://` to plain `http://` is refused unless insecure HTTP is allowed
/// (the check on `--source` would mean little if a server could downgrade it).
pub fn http_client(allow_insecure_http: bool) -> Result<reqwest::Client> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else if attempt.url().scheme() == "http" && !allow_insecure_http {
            attempt.error("redirected to plain http:// (pass --allow-insecure-http to allow)")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .redirect(redirects)
        .user_agent(concat!("deepseek-runtime/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ModelFilesError::Transport {
            url: String::new(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53";

    #[test]
    fn parses_a_pin_and_lowercases_its_digest() {
        let pin = parse_pin(&format!("dir/m.gguf={A}")).unwrap();
        assert_eq!(pin.path, "dir/m.gguf");
        assert_eq!(pin.sha256, A.to_ascii_lowercase());
    }

    #[test]
    fn rejects_a_pin_without_a_valid_digest_or_with_an_escaping_path() {
        assert!(matches!(
            parse_pin("m.gguf"),
            Err(ModelFilesError::BadManifest { .. })
        ));
        assert!(matches!(
            parse_pin("m.gguf=abc"),
            Err(ModelFilesError::BadManifest { .. })
        ));
        let escaping = parse_pin(&format!("../m.gguf={A}"));
        assert!(matches!(escaping, Err(ModelFilesError::BadManifest { .. })));
    }

    #[test]
    fn local_copy_without_pins_records_what_it_copied() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d/x.bin"), b"abc").unwrap();
        let opts = FetchOptions {
            source: src.path().display().to_string(),
            dest: dest.path().join("m"),
            ..FetchOptions::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = rt.block_on(fetch(&opts)).unwrap();
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].sha256, crate::hash::sha256_bytes(b"abc"));
        assert_eq!(
            std::fs::read(dest.path().join("m/d/x.bin")).unwrap(),
            b"abc"
        );
        assert!(dest
            .path()
            .join("m")
            .join(super::super::manifest::MANIFEST_NAME)
            .is_file());
    }
}
