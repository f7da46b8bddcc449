//! `backup`: copies a verified model directory (its files and manifest) into a new timestamped
//! generation of a directory or S3 prefix, verifies the copy, marks it complete, then prunes
//! to the newest N complete generations. A backup that stops half-way leaves a generation that
//! is never complete: earlier generations stay intact and `restore latest` ignores it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::fetch::http_client;
use super::manifest::{FileEntry, Manifest, MANIFEST_NAME};
use super::s3::S3Client;
use super::sources::S3Flags;
use super::store::{new_generation_id, Store};
use super::{ModelFilesError, Result};

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub src: PathBuf,
    pub dest: String,
    /// Complete generations kept after this one (at least 1).
    pub keep: usize,
    pub s3: S3Flags,
}

/// Runs one backup; returns the new generation's ID.
pub async fn backup(opts: &BackupOptions) -> Result<String> {
    let manifest_path = opts.src.join(MANIFEST_NAME);
    if !manifest_path.is_file() {
        return Err(ModelFilesError::Backup {
            location: opts.src.display().to_string(),
            reason: format!(
                "no {MANIFEST_NAME}: only files with a manifest (written by `fetch`) are backed up"
            ),
        });
    }
    let manifest = Manifest::read(&manifest_path)?;
    // Backups live at an endpoint the operator configured itself (often in-cluster http).
    let store = Store::parse(&opts.dest, &opts.s3, http_client(true)?)?;
    let id = fresh_id(&store).await?;
    tracing::info!(src = %opts.src.display(), dest = %store.location(), generation = %id, files = manifest.files.len(), "backup started");
    store.begin(&id)?;
    let copied = copy_all(&store, &id, &opts.src, &manifest).await;
    if let Err(e) = copied {
        // The generation never became complete; remove what was written (best effort).
        if let Err(cleanup) = store.delete(&id).await {
            tracing::warn!(generation = %id, error = %cleanup, "could not remove the failed generation");
        }
        return Err(e);
    }
    tracing::info!(generation = %id, "backup complete");
    let pruned = prune(&store, opts.keep.max(1)).await?;
    if !pruned.is_empty() {
        tracing::info!(?pruned, "pruned old generations");
    }
    Ok(id)
}

async fn copy_all(store: &Store, id: &str, src: &Path, manifest: &Manifest) -> Result<()> {
    for f in &manifest.files {
        store.put(id, f, &src.join(&f.path)).await?;
        tracing::info!(file = %f.path, generation = %id, "copied and verified");
    }
    store.commit(id, manifest).await
}

/// A generation ID not yet used at the destination (two backups in one millisecond).
async fn fresh_id(store: &Store) -> Result<String> {
    let existing = store.generations().await?;
    loop {
        let id = new_generation_id();
        if !existing.iter().any(|g| g.id == id) {
            return Ok(id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// Keeps the newest `keep` complete generations; also removes incomplete generations older
/// than the newest complete one (left by interrupted runs). Returns the IDs deleted.
pub async fn prune(store: &Store, keep: usize) -> Result<Vec<String>> {
    let gens = store.generations().await?;
    let complete: Vec<&str> = gens
        .iter()
        .filter(|g| g.complete)
        .map(|g| g.id.as_str())
        .collect();
    let newest = complete.last().copied().unwrap_or_default();
    let mut doomed: Vec<String> = complete
        .iter()
        .rev()
        .skip(keep)
        .map(|s| s.to_string())
        .collect();
    doomed.extend(
        gens.iter()
            .filter(|g| !g.complete && g.id.as_str() < newest)
            .map(|g| g.id.clone()),
    );
    for id in &doomed {
        store.delete(id).await?;
    }
    Ok(doomed)
}

/// PUTs `src` to `key`, hashing as it streams: if the bytes read do not match `entry`, the body
/// fails before its last chunk is sent, so S3 never stores a wrong object.
pub async fn put_verified(
    client: &S3Client,
    bucket: &str,
    key: &str,
    entry: &FileEntry,
    src: &Path,
) -> Result<()> {
    let file = tokio::fs::File::open(src)
        .await
        .map_err(|e| ModelFilesError::io(src, e))?;
    let size = match entry.size {
        Some(s) => s,
        None => file
            .metadata()
            .await
            .map_err(|e| ModelFilesError::io(src, e))?
            .len(),
    };
    if size > super::multipart::part_size(size) {
        return super::multipart::upload(client, bucket, key, entry, file, size, src).await;
    }
    let mismatch: Arc<Mutex<Option<ModelFilesError>>> = Arc::default();
    let body = verifying_body(
        file,
        size,
        entry.clone(),
        src.to_path_buf(),
        mismatch.clone(),
    );
    let sent = client
        .put_stream(bucket, key, body, size, &entry.sha256)
        .await;
    let found = mismatch.lock().ok().and_then(|mut m| m.take());
    match (found, sent) {
        (Some(e), _) => Err(e),
        (None, r) => r,
    }
}

struct BodyState {
    file: tokio::fs::File,
    hasher: Sha256,
    left: u64,
    total: u64,
    entry: FileEntry,
    src: PathBuf,
    mismatch: Arc<Mutex<Option<ModelFilesError>>>,
}

fn verifying_body(
    file: tokio::fs::File,
    size: u64,
    entry: FileEntry,
    src: PathBuf,
    mismatch: Arc<Mutex<Option<ModelFilesError>>>,
) -> reqwest::Body {
    let state = BodyState {
        file,
        hasher: Sha256::new(),
        left: size,
        total: size,
        entry,
        src,
        mismatch,
    };
    let stream = futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        let mut buf = vec![0u8; st.left.min(super::hash::CHUNK as u64) as usize];
        let n = match st.file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => return Some((Err(e), None)),
        };
        if n == 0 {
            let err = ModelFilesError::SizeMismatch {
                path: st.src.display().to_string(),
                expected: st.total,
                actual: st.total - st.left,
            };
            return Some((Err(record(&st.mismatch, err)), None));
        }
        buf.truncate(n);
        st.hasher.update(&buf);
        st.left -= n as u64;
        if st.left > 0 {
            return Some((Ok(bytes::Bytes::from(buf)), Some(st)));
        }
        let actual = hex::encode(std::mem::take(&mut st.hasher).finalize());
        if actual != st.entry.sha256 {
            let err = ModelFilesError::DigestMismatch {
                path: st.src.display().to_string(),
                expected: st.entry.sha256.clone(),
                actual,
            };
            return Some((Err(record(&st.mismatch, err)), None));
        }
        Some((Ok(bytes::Bytes::from(buf)), None))
    });
    reqwest::Body::wrap_stream(stream.boxed())
}

/// Keeps the integrity error for the caller and hands the HTTP stack a plain I/O error.
fn record(slot: &Mutex<Option<ModelFilesError>>, err: ModelFilesError) -> std::io::Error {
    let io = std::io::Error::other(err.to_string());
    if let Ok(mut s) = slot.lock() {
        *s = Some(err);
    }
    io
}
