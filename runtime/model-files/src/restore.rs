//! `restore`: brings a complete backup generation (the newest, or a named one) into a
//! directory, verifying every file against the generation's manifest; a corrupted backup is
//! refused with the file, expected and actual digest, and nothing wrong is left at a final name.

use std::path::PathBuf;

use super::download::RetryPolicy;
use super::fetch::http_client;
use super::manifest::Manifest;
use super::sources::S3Flags;
use super::store::Store;
use super::{ModelFilesError, Result};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub src: String,
    /// A generation ID, or `None` / "latest" for the newest complete one.
    pub generation: Option<String>,
    pub dest: PathBuf,
    pub s3: S3Flags,
    pub policy: RetryPolicy,
}

/// Restores; returns the generation restored and its manifest.
pub async fn restore(opts: &RestoreOptions) -> Result<(String, Manifest)> {
    // Backups live at an endpoint the operator configured itself (often in-cluster http).
    let store = Store::parse(&opts.src, &opts.s3, http_client(true)?)?;
    let gens = store.generations().await?;
    let id = match opts.generation.as_deref() {
        None | Some("latest") => gens.iter().rev().find(|g| g.complete).map(|g| g.id.clone()),
        Some(id) => gens
            .iter()
            .find(|g| g.id == id && g.complete)
            .map(|g| g.id.clone()),
    };
    let id = id.ok_or_else(|| ModelFilesError::Backup {
        location: store.location(),
        reason: match &opts.generation {
            Some(g) if g != "latest" => format!("no complete generation {g}"),
            _ => "no complete generation".into(),
        },
    })?;
    let manifest = store.read_manifest(&id).await?;
    tracing::info!(src = %store.location(), generation = %id, dest = %opts.dest.display(), files = manifest.files.len(), "restore started");
    std::fs::create_dir_all(&opts.dest).map_err(|e| ModelFilesError::io(&opts.dest, e))?;
    for f in &manifest.files {
        store.restore_file(&id, f, &opts.dest, &opts.policy).await?;
        tracing::info!(file = %f.path, "restored and verified");
    }
    manifest.write_to_dir(&opts.dest)?;
    Ok((id, manifest))
}
