//! `https://HOST/BASE` (or `http://` with `--allow-insecure-http`): files live under the base
//! URL. The file list comes from the pins, or from `BASE/deepseek-manifest.json` when the
//! server publishes one (a backup generation or a directory `fetch` filled, served over HTTP).
//!
//! A base URL that already ends with the file's path is that file
//! (`--source https://host/m.gguf --sha256 m.gguf=...` fetches `https://host/m.gguf`, as a new
//! user expects, not `https://host/m.gguf/m.gguf`). A query string on the base (a presigned
//! URL, a token) is kept on every file's URL and never logged (see `redact`).

use std::path::Path;

use super::{join_url, ranged_get, RemoteFile};
use crate::download::{download, Expect, RetryPolicy};
use crate::manifest::{FileEntry, Manifest, MANIFEST_NAME};
use crate::small;
use crate::{ModelFilesError, Result};

pub struct HttpSource {
    /// Scheme, host and path, no trailing '/', no query.
    base: String,
    /// `?...` of the source URL, or empty.
    query: String,
    client: reqwest::Client,
}

impl HttpSource {
    pub fn new(source: &str, client: reqwest::Client) -> Self {
        let source = source.split_once('#').map_or(source, |(s, _)| s);
        let (base, query) = match source.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (source, String::new()),
        };
        Self {
            base: base.trim_end_matches('/').to_string(),
            query,
            client,
        }
    }

    /// The URL `rel` is fetched from.
    pub fn file_url(&self, rel: &str) -> String {
        // `/REL` encoded as it would be joined, compared with the base's path (not its host).
        let suffix = join_url("", rel);
        let authority = self.base.find("://").map_or(0, |i| i + 3);
        let path = self.base[authority..]
            .find('/')
            .map(|i| &self.base[authority + i..]);
        if path.is_some_and(|p| p.ends_with(&suffix)) {
            return format!("{}{}", self.base, self.query);
        }
        format!("{}{}", join_url(&self.base, rel), self.query)
    }

    pub async fn listing(&self, policy: &RetryPolicy) -> Result<Option<Vec<RemoteFile>>> {
        let url = format!("{}{}", join_url(&self.base, MANIFEST_NAME), self.query);
        let (status, body) = small::send(self.client.get(&url), policy.listing)
            .await
            .map_err(|e| e.into_error(&url, "manifest"))?;
        if !status.is_success() {
            return Ok(None);
        }
        // Named in errors: redacted (the query may be a presigned signature).
        let manifest = Manifest::parse(&String::from_utf8_lossy(&body), &crate::redact::url(&url))?;
        Ok(Some(manifest.files.iter().map(RemoteFile::from).collect()))
    }

    pub async fn fetch(
        &self,
        rel: &str,
        target: &Path,
        expect: &Expect,
        policy: &RetryPolicy,
    ) -> Result<FileEntry> {
        let url = self.file_url(rel);
        let request = |offset| ranged_get(&self.client, &url, offset);
        download(rel, &url, &request, target, expect, policy).await
    }
}

/// Refuses a plain `http://` URL unless insecure HTTP is allowed.
pub fn require_https(url: &str, allow_insecure_http: bool) -> Result<()> {
    let plain = url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if plain && !allow_insecure_http {
        return Err(ModelFilesError::InsecureHttp(url.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(s: &str) -> HttpSource {
        HttpSource::new(s, reqwest::Client::new())
    }

    #[test]
    fn a_base_that_ends_with_the_file_is_the_file() {
        assert_eq!(
            source("https://h/m.gguf").file_url("m.gguf"),
            "https://h/m.gguf"
        );
        assert_eq!(
            source("https://h/d/sub/m.gguf?X-Amz-Signature=s").file_url("sub/m.gguf"),
            "https://h/d/sub/m.gguf?X-Amz-Signature=s"
        );
        // A directory base: the file below it, the query kept.
        assert_eq!(
            source("https://h/d/").file_url("m.gguf"),
            "https://h/d/m.gguf"
        );
        assert_eq!(
            source("https://h/d?token=t").file_url("a b.gguf"),
            "https://h/d/a%20b.gguf?token=t"
        );
        // Only a whole path segment counts: `xm.gguf` is not `m.gguf`, nor is the host.
        assert_eq!(
            source("https://h/xm.gguf").file_url("m.gguf"),
            "https://h/xm.gguf/m.gguf"
        );
        assert_eq!(
            source("https://m.gguf").file_url("m.gguf"),
            "https://m.gguf/m.gguf"
        );
    }

    #[test]
    fn plain_http_needs_the_flag() {
        assert!(require_https("https://h/m", false).is_ok());
        assert!(matches!(
            require_https("HTTP://h/m", false),
            Err(ModelFilesError::InsecureHttp(_))
        ));
        assert!(require_https("http://h/m", true).is_ok());
        assert!(require_https("s3://b/p", false).is_ok());
    }
}
