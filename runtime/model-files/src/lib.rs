//! deepseek-model-files: moving and checking model weights. Is NOT: loading or running them
//! (`deepseek-engine`); it knows files, digests and transports only.
//!
//! Model files on disk and in transit: the SHA256 manifest, streamed hashing, fetching from
//! HTTP(S) / Hugging Face / S3-compatible buckets / local or mounted paths (resumable, retried,
//! verified before the final rename), verification before serving, and cold backups in
//! timestamped generations with restore. `cli` holds the `fetch`, `backup` and `restore`
//! subcommands; everything else is a library the CLI and `serve` share.

pub mod backup;
pub mod cli;
pub mod download;
pub mod fetch;
pub mod hash;
pub mod manifest;
pub mod multipart;
pub mod progress;
pub mod redact;
pub mod restore;
pub mod s3;
pub mod sigv4;
pub mod small;
pub mod sources;
pub mod store;
pub mod verify;

use std::path::PathBuf;

/// Exit status of `fetch`, `serve`, `backup` and `restore` when a file does not match its
/// SHA256 (or size), is missing, or a backup is corrupted: the file must not be used.
pub const EXIT_INTEGRITY: i32 = 3;
/// Exit status when the source cannot deliver a file (HTTP 4xx such as 404, S3 errors, network
/// failures after every retry) or names no files.
pub const EXIT_SOURCE: i32 = 4;
/// Exit status for everything else (bad arguments, local I/O errors).
pub const EXIT_OTHER: i32 = 1;

/// Everything that can go wrong with model files; each variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ModelFilesError {
    #[error("{path}: SHA256 mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: missing (listed in the manifest)")]
    Missing { path: String },
    // URLs and the HTTP client's reasons pass through `redact`: errors are logged and printed,
    // and a source URL may carry credentials (user:pass@, a presigned query string).
    #[error("{}: HTTP {status}{}", redact::url(.url), body_suffix(.body))]
    HttpStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{}: {}", redact::url(.url), redact::text(.reason))]
    Transport { url: String, reason: String },
    /// More bytes than the file can have: its pinned or listed size, or the cap on a file of
    /// unknown size (`--max-file-bytes`), or the cap on a listing (`--max-listing-bytes`).
    #[error("{}: {what} larger than the {limit} bytes allowed ({why}); giving up", redact::url(.url))]
    TooLarge {
        url: String,
        what: &'static str,
        limit: u64,
        why: String,
    },
    #[error("{}: no data for {secs}s (stalled)", redact::url(.url))]
    Stalled { url: String, secs: u64 },
    #[error("{path}: giving up after {attempts} attempts: {last}")]
    RetriesExhausted {
        path: String,
        attempts: u32,
        last: Box<ModelFilesError>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("bad manifest {path}: {reason}")]
    BadManifest { path: String, reason: String },
    #[error("bad source {:?}: expected https://, http://, hf://REPO@REVISION, s3://BUCKET/PREFIX, pvc://CLAIM/PATH or a local path", redact::url(.0))]
    BadSource(String),
    #[error("{}: plain http:// is refused (the bytes and any credentials travel unencrypted); use https:// or pass --allow-insecure-http", redact::url(.0))]
    InsecureHttp(String),
    #[error("{0}")]
    NoFiles(String),
    #[error("S3 {op} {key}: {}", redact::text(.reason))]
    S3 {
        op: &'static str,
        key: String,
        reason: String,
    },
    #[error("backup {location}: {reason}")]
    Backup { location: String, reason: String },
}

impl ModelFilesError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into().display().to_string(),
            source,
        }
    }

    /// Whether the failure says the bytes are wrong (never served, never retried blindly).
    pub fn is_integrity(&self) -> bool {
        match self {
            Self::DigestMismatch { .. } | Self::SizeMismatch { .. } | Self::Missing { .. } => true,
            Self::RetriesExhausted { last, .. } => last.is_integrity(),
            _ => false,
        }
    }

    /// Process exit status for this failure (see the `EXIT_*` constants).
    pub fn exit_code(&self) -> i32 {
        match self {
            e if e.is_integrity() => EXIT_INTEGRITY,
            Self::HttpStatus { .. }
            | Self::Transport { .. }
            | Self::Stalled { .. }
            | Self::TooLarge { .. }
            | Self::RetriesExhausted { .. }
            | Self::NoFiles(_)
            | Self::S3 { .. } => EXIT_SOURCE,
            _ => EXIT_OTHER,
        }
    }
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

pub type Result<T> = std::result::Result<T, ModelFilesError>;
