//! Requests whose whole answer is read into memory (listings, manifests, S3 control calls and
//! error bodies): one deadline for the request and its body together, and a cap on the body,
//! so a server that stalls or streams forever costs a bounded wait and bounded memory.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};

/// Bounds for one small request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmallLimits {
    /// From sending the request to the body's last byte.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_bytes: u64,
}

/// Default cap on a listing or manifest: a Hugging Face listing of a repository with
/// thousands of files is a few MiB.
pub const DEFAULT_MAX_LISTING_BYTES: u64 = 16 << 20;

impl Default for SmallLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_bytes: DEFAULT_MAX_LISTING_BYTES,
        }
    }
}

/// Why a small request failed, for the caller to wrap in its own error variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmallError {
    /// The deadline passed (no answer, or a body that did not finish).
    Timeout(Duration),
    /// The body is (or announced itself as) larger than the cap.
    TooLarge { limit: u64, why: String },
    /// The HTTP client's error, without its URL (callers add a redacted one).
    Transport(String),
}

impl std::fmt::Display for SmallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "no complete answer within {}s", d.as_secs_f64()),
            Self::TooLarge { limit, why } => {
                write!(f, "answer larger than the {limit} bytes allowed ({why})")
            }
            Self::Transport(reason) => f.write_str(reason),
        }
    }
}

impl SmallError {
    /// As a `ModelFilesError` about `url`.
    pub fn into_error(self, url: &str, what: &'static str) -> crate::ModelFilesError {
        match self {
            Self::TooLarge { limit, why } => crate::ModelFilesError::TooLarge {
                url: url.to_string(),
                what,
                limit,
                why,
            },
            other => crate::ModelFilesError::Transport {
                url: url.to_string(),
                reason: format!("{what}: {other}"),
            },
        }
    }
}

/// Sends `req` and reads its whole body within `limits`.
pub async fn send(
    req: RequestBuilder,
    limits: SmallLimits,
) -> Result<(StatusCode, Vec<u8>), SmallError> {
    let work = async {
        let resp = req
            .send()
            .await
            .map_err(|e| SmallError::Transport(describe(e)))?;
        let status = resp.status();
        let body = read_body(resp, limits.max_bytes).await?;
        Ok((status, body))
    };
    tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| SmallError::Timeout(limits.timeout))?
}

/// Reads a response's body, refusing more than `max_bytes` (the caller bounds the time).
pub async fn read_body(mut resp: reqwest::Response, max_bytes: u64) -> Result<Vec<u8>, SmallError> {
    if let Some(n) = resp.content_length().filter(|&n| n > max_bytes) {
        return Err(SmallError::TooLarge {
            limit: max_bytes,
            why: format!("Content-Length says {n}"),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| SmallError::Transport(describe(e)))?
    {
        if (body.len() as u64).saturating_add(chunk.len() as u64) > max_bytes {
            return Err(SmallError::TooLarge {
                limit: max_bytes,
                why: "the body kept coming".into(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The HTTP client's error with its causes ("error sending request: ...: connection refused"),
/// without the URL it carries (callers add a redacted one).
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// At most `max_chars` of an error body, for messages.
pub fn snippet(body: &[u8], max_chars: usize) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(max_chars)
        .collect()
}
