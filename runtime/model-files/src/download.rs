//! One file over HTTP into `NAME.partial`: resumed with `Range` after an interruption, each
//! request bounded by a timeout and each read by a stall timeout, retried with exponential
//! backoff, and renamed to `NAME` only once its size and SHA256 match. A digest mismatch
//! deletes the partial file, so nothing wrong is ever left at (or next to) the final name.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};
use sha2::{Digest, Sha256};

use super::hash::{hash_prefix, sha256_file};
use super::manifest::FileEntry;
use super::progress::Progress;
use super::small::{self, SmallLimits};
use super::{ModelFilesError, Result};

/// How hard a download tries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Until response headers arrive.
    pub request_timeout: Duration,
    /// Longest wait for the next bytes of a body before the attempt counts as stalled.
    pub stall_timeout: Duration,
    /// Attempts per file, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Bounds on listings and manifests (read whole into memory).
    pub listing: SmallLimits,
    /// Cap on a file whose size nobody states (not pinned, not listed); a file of known size
    /// is capped at that size.
    pub max_file_bytes: u64,
}

/// Default cap on a file of unknown size: larger than any single file of DeepSeek-V3's
/// published checkpoints (a 671B model in one GGUF at 8 bits is about 715 GB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 2 << 40;

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            attempts: 6,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            listing: SmallLimits::default(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What the file must turn out to be; `sha256: None` records whatever arrives (unpinned).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// `NAME.partial` next to `NAME`.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Downloads `rel` to `dest`. `request(offset)` builds the GET for bytes `offset..`.
pub async fn download(
    rel: &str,
    url: &str,
    request: &(dyn Fn(u64) -> RequestBuilder + Sync),
    dest: &Path,
    expect: &Expect,
    policy: &RetryPolicy,
) -> Result<FileEntry> {
    if let Some(entry) = already_there(rel, dest, expect)? {
        tracing::info!(file = rel, "already present and verified");
        return Ok(entry);
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| ModelFilesError::io(parent, e))?;
    }
    let partial = partial_path(dest);
    let mut progress = Progress::new(rel, expect.size);
    let mut attempt = 1;
    let (size, actual) = loop {
        match attempt_once(url, request, &partial, expect, policy, &mut progress).await {
            Ok(done) => break done,
            Err(e) if !retryable(&e) => {
                // A definitive answer (404, 403, ...): nothing worth resuming later.
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
            Err(e) if attempt >= policy.attempts => {
                // What arrived stays in NAME.partial for the next run to resume, unless empty.
                if std::fs::metadata(&partial).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&partial);
                }
                return Err(ModelFilesError::RetriesExhausted {
                    path: rel.to_string(),
                    attempts: attempt,
                    last: Box::new(e),
                });
            }
            Err(e) => {
                let wait = policy.delay(attempt);
                tracing::warn!(file = rel, attempt, error = %e, retry_in_ms = wait.as_millis() as u64, "download failed, retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    };
    progress.finish();
    finish(rel, &partial, dest, expect, size, actual)
}

/// A file already at `dest` that matches its pin is kept (an init container that restarts).
pub(crate) fn already_there(rel: &str, dest: &Path, expect: &Expect) -> Result<Option<FileEntry>> {
    let Some(want) = &expect.sha256 else {
        return Ok(None);
    };
    if !dest.is_file() {
        return Ok(None);
    }
    let (size, actual) = sha256_file(dest)?;
    Ok(
        (&actual == want && expect.size.is_none_or(|s| s == size)).then(|| FileEntry {
            path: rel.to_string(),
            size: Some(size),
            sha256: actual,
        }),
    )
}

/// Checks size and digest, then renames; on a mismatch the partial file is deleted.
pub(crate) fn finish(
    rel: &str,
    partial: &Path,
    dest: &Path,
    expect: &Expect,
    size: u64,
    actual: String,
) -> Result<FileEntry> {
    let mismatch = if expect.size.is_some_and(|s| s != size) {
        Some(ModelFilesError::SizeMismatch {
            path: rel.to_string(),
            expected: expect.size.unwrap_or_default(),
            actual: size,
        })
    } else {
        match &expect.sha256 {
            Some(want) if *want != actual => Some(ModelFilesError::DigestMismatch {
                path: rel.to_string(),
                expected: want.clone(),
                actual: actual.clone(),
            }),
            _ => None,
        }
    };
    if let Some(err) = mismatch {
        let _ = std::fs::remove_file(partial);
        return Err(err);
    }
    std::fs::rename(partial, dest).map_err(|e| ModelFilesError::io(dest, e))?;
    Ok(FileEntry {
        path: rel.to_string(),
        size: Some(size),
        sha256: actual,
    })
}

/// Integrity failures and definitive HTTP answers are final; the rest is worth another try.
fn retryable(e: &ModelFilesError) -> bool {
    match e {
        ModelFilesError::HttpStatus { status, .. } => {
            *status == 408 || *status == 429 || *status >= 500
        }
        ModelFilesError::Transport { .. } | ModelFilesError::Stalled { .. } => true,
        _ => false,
    }
}

fn transport(url: &str, reason: impl std::fmt::Display) -> ModelFilesError {
    ModelFilesError::Transport {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// One request: resumes from what `partial` holds; returns total size and digest when the
/// body is complete.
async fn attempt_once(
    url: &str,
    request: &(dyn Fn(u64) -> RequestBuilder + Sync),
    partial: &Path,
    expect: &Expect,
    policy: &RetryPolicy,
    progress: &mut Progress,
) -> Result<(u64, String)> {
    let io = |e| ModelFilesError::io(partial, e);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(partial)
        .map_err(io)?;
    let mut offset = file.metadata().map_err(io)?.len();
    if expect.size.is_some_and(|s| offset > s) {
        offset = 0; // longer than the file can be: start over
    }
    let mut hasher = Sha256::new();
    file.rewind().map_err(io)?;
    offset = hash_prefix(&mut file, &mut hasher, offset).map_err(io)?;
    if expect.size == Some(offset) && offset > 0 {
        return Ok((offset, hex::encode(hasher.finalize())));
    }
    let send = request(offset).send();
    let resp = tokio::time::timeout(policy.request_timeout, send)
        .await
        .map_err(|_| {
            transport(
                url,
                format!("no response within {:?}", policy.request_timeout),
            )
        })?
        .map_err(|e| transport(url, small::describe(e)))?;
    let status = resp.status();
    let restart = match status {
        StatusCode::PARTIAL_CONTENT if content_range_start(&resp) == Some(offset) => false,
        StatusCode::OK => offset > 0, // the server ignored Range: take the whole body
        StatusCode::RANGE_NOT_SATISFIABLE => {
            file.set_len(0).map_err(io)?;
            return Err(transport(
                url,
                "range not satisfiable; restarting from zero",
            ));
        }
        s if s.is_success() => {
            return Err(transport(url, format!("unexpected {s} to a Range request")))
        }
        s => {
            // Bounded: an error page is read for its first words, not to its (endless) end.
            let body =
                tokio::time::timeout(policy.request_timeout, small::read_body(resp, 64 << 10));
            let body = body.await.ok().and_then(|b| b.ok()).unwrap_or_default();
            return Err(ModelFilesError::HttpStatus {
                url: url.to_string(),
                status: s.as_u16(),
                body: small::snippet(&body, 200),
            });
        }
    };
    if restart {
        offset = 0;
        hasher = Sha256::new();
    }
    file.set_len(offset).map_err(io)?;
    file.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
    if offset > 0 {
        tracing::info!(file = %partial.display(), offset, "resuming with Range");
    }
    let cap = Cap::for_file(expect, policy);
    // Overflow-safe: a Content-Length near u64::MAX plus the resume offset must be a refusal,
    // not a wrapped (or, with overflow checks, panicking) total.
    let announced = match resp.content_length() {
        Some(n) => Some(
            n.checked_add(offset)
                .filter(|&total| total <= cap.limit)
                .ok_or_else(|| {
                    cap.exceeded(url, format!("Content-Length says {n} more after {offset}"))
                })?,
        ),
        None => None,
    };
    progress.restart_at(offset);
    progress.set_total(announced);
    let received = stream_body(
        url,
        resp,
        &mut file,
        &mut hasher,
        policy,
        progress,
        partial,
        offset,
        &cap,
    )
    .await?;
    file.sync_all().map_err(io)?;
    Ok((
        offset.saturating_add(received),
        hex::encode(hasher.finalize()),
    ))
}

/// The most bytes a file may have: its expected size when known, else the policy's cap.
struct Cap {
    limit: u64,
    why: &'static str,
}

impl Cap {
    fn for_file(expect: &Expect, policy: &RetryPolicy) -> Self {
        match expect.size {
            Some(size) => Self {
                limit: size,
                why: "its pinned or listed size",
            },
            None => Self {
                limit: policy.max_file_bytes,
                why: "--max-file-bytes, for a file of unknown size",
            },
        }
    }

    fn exceeded(&self, url: &str, detail: String) -> ModelFilesError {
        ModelFilesError::TooLarge {
            url: url.to_string(),
            what: "file",
            limit: self.limit,
            why: format!("{}; {detail}", self.why),
        }
    }
}

/// Copies the body into `file` and `hasher`; a short body is an error (resumed next attempt),
/// a body that would take the file past `cap` too (final: the server sends what it should not).
#[allow(clippy::too_many_arguments)]
async fn stream_body(
    url: &str,
    mut resp: reqwest::Response,
    file: &mut std::fs::File,
    hasher: &mut Sha256,
    policy: &RetryPolicy,
    progress: &mut Progress,
    partial: &Path,
    offset: u64,
    cap: &Cap,
) -> Result<u64> {
    let expected = resp.content_length();
    let mut out = std::io::BufWriter::with_capacity(super::hash::CHUNK, file);
    let mut received = 0u64;
    let outcome = loop {
        let next = tokio::time::timeout(policy.stall_timeout, resp.chunk()).await;
        let chunk = match next {
            Err(_) => {
                break Err(ModelFilesError::Stalled {
                    url: url.to_string(),
                    secs: policy.stall_timeout.as_secs(),
                })
            }
            Ok(Err(e)) => break Err(transport(url, small::describe(e))),
            Ok(Ok(None)) => break Ok(()),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let total = offset
            .saturating_add(received)
            .saturating_add(chunk.len() as u64);
        if total > cap.limit {
            break Err(cap.exceeded(url, format!("more than {} bytes arrived", cap.limit)));
        }
        if let Err(e) = out.write_all(&chunk) {
            break Err(ModelFilesError::io(partial, e));
        }
        hasher.update(&chunk);
        received += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    };
    // Keep what arrived even on failure: the next attempt resumes after it.
    out.flush().map_err(|e| ModelFilesError::io(partial, e))?;
    outcome?;
    match expected {
        Some(n) if received < n => Err(transport(
            url,
            format!("connection closed after {received} of {n} bytes"),
        )),
        _ => Ok(received),
    }
}

/// Start offset of a 206's `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get("content-range")?.to_str().ok()?;
    let range = v.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=4).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
    }

    #[test]
    fn partial_name_appends_the_suffix() {
        assert_eq!(
            partial_path(Path::new("/m/a.gguf")),
            Path::new("/m/a.gguf.partial")
        );
    }

    #[test]
    fn a_404_is_final_and_a_503_is_retried() {
        let status = |status| ModelFilesError::HttpStatus {
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(!retryable(&status(404)));
        assert!(retryable(&status(503)));
    }
}
