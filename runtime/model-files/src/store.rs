//! Where backup generations live: a directory (a backup PVC) or an S3-compatible prefix.
//!
//! Directory: `DEST/.partial-ID/` while a backup runs; renamed to `DEST/ID/` once the copy is
//! verified (the rename is the mark of completion). S3: `PREFIX/ID/...`, complete only once
//! `PREFIX/ID/COMPLETE` exists, written last (S3 has no rename). IDs are UTC timestamps
//! (`20261129T162500.123Z`) so they sort by age; an incomplete generation is never restored.

use std::path::{Path, PathBuf};

use super::download::{download, Expect, RetryPolicy};
use super::manifest::{FileEntry, Manifest, MANIFEST_NAME, SUMS_NAME};
use super::s3::{S3Client, S3Config};
use super::sources::local::copy_hashing;
use super::sources::S3Flags;
use super::{ModelFilesError, Result};

const STAGING: &str = ".partial-";
/// Marker object of a complete S3 generation (holds the manifest's SHA256).
pub const COMPLETE: &str = "COMPLETE";
const ID_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub id: String,
    pub complete: bool,
}

pub enum Store {
    Dir(PathBuf),
    S3 {
        client: S3Client,
        bucket: String,
        /// Without leading or trailing '/'.
        prefix: String,
    },
}

pub fn new_generation_id() -> String {
    chrono::Utc::now().format(ID_FORMAT).to_string()
}

pub fn is_generation_id(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, ID_FORMAT).is_ok()
}

impl Store {
    pub fn parse(dest: &str, s3: &S3Flags, http: reqwest::Client) -> Result<Self> {
        if let Some(rest) = dest.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ModelFilesError::BadSource(dest.to_string()));
            }
            let config = S3Config::from_env(s3.endpoint.as_deref(), s3.region.as_deref());
            return Ok(Self::S3 {
                client: S3Client::new(http, config),
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if dest.is_empty() || dest.contains("://") {
            return Err(ModelFilesError::BadSource(dest.to_string()));
        }
        Ok(Self::Dir(PathBuf::from(dest)))
    }

    pub fn location(&self) -> String {
        match self {
            Self::Dir(d) => d.display().to_string(),
            Self::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    fn key(prefix: &str, id: &str, rel: &str) -> String {
        if prefix.is_empty() {
            format!("{id}/{rel}")
        } else {
            format!("{prefix}/{id}/{rel}")
        }
    }

    fn staging(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{STAGING}{id}"))
    }

    /// Every generation, oldest first.
    pub async fn generations(&self) -> Result<Vec<Generation>> {
        let mut gens = match self {
            Self::Dir(dir) => dir_generations(dir)?,
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                let root = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                let objects = client.list(bucket, &root).await?;
                let mut gens: Vec<Generation> = Vec::new();
                for o in objects {
                    let Some((id, rest)) =
                        o.key.strip_prefix(&root).and_then(|r| r.split_once('/'))
                    else {
                        continue;
                    };
                    if !is_generation_id(id) {
                        continue;
                    }
                    if !gens.iter().any(|g| g.id == id) {
                        gens.push(Generation {
                            id: id.to_string(),
                            complete: false,
                        });
                    }
                    if rest == COMPLETE {
                        gens.iter_mut()
                            .filter(|g| g.id == id)
                            .for_each(|g| g.complete = true);
                    }
                }
                gens
            }
        };
        gens.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(gens)
    }

    /// The newest complete generation.
    pub async fn latest(&self) -> Result<Option<String>> {
        let gens = self.generations().await?;
        Ok(gens.into_iter().rev().find(|g| g.complete).map(|g| g.id))
    }

    pub fn begin(&self, id: &str) -> Result<()> {
        if let Self::Dir(dir) = self {
            let staging = Self::staging(dir, id);
            std::fs::create_dir_all(&staging).map_err(|e| ModelFilesError::io(&staging, e))?;
        }
        Ok(())
    }

    /// Copies `src` (which must match `entry`) into generation `id`.
    pub async fn put(&self, id: &str, entry: &FileEntry, src: &Path) -> Result<()> {
        match self {
            Self::Dir(dir) => {
                let target = Self::staging(dir, id).join(&entry.path);
                copy_hashing(&entry.path, src, &target, &expect_of(entry)).map(drop)
            }
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = Self::key(prefix, id, &entry.path);
                super::backup::put_verified(client, bucket, &key, entry, src).await
            }
        }
    }

    /// Writes the manifest, verifies the copy, then marks the generation complete.
    pub async fn commit(&self, id: &str, manifest: &Manifest) -> Result<()> {
        match self {
            Self::Dir(dir) => {
                let staging = Self::staging(dir, id);
                manifest.write_to_dir(&staging)?;
                super::verify::verify_dir(&staging, manifest)?;
                let done = dir.join(id);
                std::fs::rename(&staging, &done).map_err(|e| ModelFilesError::io(&done, e))?;
                sync_dir(dir);
                Ok(())
            }
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                let json = manifest.to_json();
                let digest = super::hash::sha256_bytes(json.as_bytes());
                let sums = manifest.to_sha256sums().into_bytes();
                client
                    .put_bytes(bucket, &Self::key(prefix, id, SUMS_NAME), sums)
                    .await?;
                let manifest_key = Self::key(prefix, id, MANIFEST_NAME);
                client
                    .put_bytes(bucket, &manifest_key, json.into_bytes())
                    .await?;
                for f in &manifest.files {
                    let key = Self::key(prefix, id, &f.path);
                    let size = client.head(bucket, &key).await?;
                    if size != f.size {
                        return Err(ModelFilesError::SizeMismatch {
                            path: client.url(bucket, &key),
                            expected: f.size.unwrap_or_default(),
                            actual: size.unwrap_or_default(),
                        });
                    }
                }
                let marker = Self::key(prefix, id, COMPLETE);
                client.put_bytes(bucket, &marker, digest.into_bytes()).await
            }
        }
    }

    pub async fn read_manifest(&self, id: &str) -> Result<Manifest> {
        match self {
            Self::Dir(dir) => Manifest::read(&dir.join(id).join(MANIFEST_NAME)),
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = Self::key(prefix, id, MANIFEST_NAME);
                let bytes = client.get_small(bucket, &key).await?.ok_or_else(|| {
                    ModelFilesError::Missing {
                        path: client.url(bucket, &key),
                    }
                })?;
                Manifest::parse(&String::from_utf8_lossy(&bytes), &client.url(bucket, &key))
            }
        }
    }

    /// Brings one file of generation `id` to `dest/PATH`, verified against `entry`.
    pub async fn restore_file(
        &self,
        id: &str,
        entry: &FileEntry,
        dest: &Path,
        policy: &RetryPolicy,
    ) -> Result<FileEntry> {
        let target = dest.join(&entry.path);
        let expect = expect_of(entry);
        match self {
            Self::Dir(dir) => {
                let src = dir.join(id).join(&entry.path);
                copy_hashing(&entry.path, &src, &target, &expect)
            }
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                let key = Self::key(prefix, id, &entry.path);
                let url = client.url(bucket, &key);
                let request = |offset| client.get(bucket, &key, offset);
                download(&entry.path, &url, &request, &target, &expect, policy).await
            }
        }
    }

    /// Deletes a generation; for S3 the marker goes first, so a half-deleted generation is
    /// never taken for a complete one.
    pub async fn delete(&self, id: &str) -> Result<()> {
        match self {
            Self::Dir(dir) => {
                for path in [dir.join(id), Self::staging(dir, id)] {
                    if path.exists() {
                        std::fs::remove_dir_all(&path)
                            .map_err(|e| ModelFilesError::io(&path, e))?;
                    }
                }
                Ok(())
            }
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                client
                    .delete(bucket, &Self::key(prefix, id, COMPLETE))
                    .await?;
                let objects = client.list(bucket, &Self::key(prefix, id, "")).await?;
                for o in objects {
                    client.delete(bucket, &o.key).await?;
                }
                Ok(())
            }
        }
    }
}

fn expect_of(entry: &FileEntry) -> Expect {
    Expect {
        sha256: Some(entry.sha256.clone()),
        size: entry.size,
    }
}

fn dir_generations(dir: &Path) -> Result<Vec<Generation>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ModelFilesError::io(dir, e)),
    };
    let mut gens = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ModelFilesError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let (id, complete) = match name.strip_prefix(STAGING) {
            Some(id) => (id.to_string(), false),
            None => (name.clone(), entry.path().join(MANIFEST_NAME).is_file()),
        };
        if is_generation_id(&id) && entry.path().is_dir() {
            gens.push(Generation { id, complete });
        }
    }
    Ok(gens)
}

/// Makes a rename durable (best effort: not every filesystem allows syncing a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generation_ids_are_timestamps_that_sort_by_age() {
        let a = new_generation_id();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let b = new_generation_id();
        assert!(is_generation_id(&a) && is_generation_id(&b));
        assert!(a < b, "{a} < {b}");
        assert!(!is_generation_id("latest"));
    }

    #[test]
    fn parses_directory_and_bucket_destinations() {
        let http = reqwest::Client::new();
        let s3 = S3Flags::default();
        assert!(matches!(
            Store::parse("/backups", &s3, http.clone()).unwrap(),
            Store::Dir(_)
        ));
        let store = Store::parse("s3://b/p/", &s3, http.clone()).unwrap();
        assert_eq!(store.location(), "s3://b/p");
        assert!(Store::parse("ftp://x", &s3, http).is_err());
    }
}
