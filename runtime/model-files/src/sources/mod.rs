//! Where model files come from. Each source can list the files it publishes (with whatever
//! digests it knows) and deliver one file into the destination directory, verified.

pub mod hf;
pub mod http;
pub mod local;
pub mod s3;

use std::path::{Path, PathBuf};

use super::download::{Expect, RetryPolicy};
use super::manifest::FileEntry;
use super::s3::S3Config;
use super::{ModelFilesError, Result};

/// A file a source lists; `sha256` only when the source publishes it (a manifest, HF's LFS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    pub path: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

impl From<&FileEntry> for RemoteFile {
    fn from(f: &FileEntry) -> Self {
        Self {
            path: f.path.clone(),
            size: f.size,
            sha256: Some(f.sha256.clone()),
        }
    }
}

/// S3 settings from the command line (the rest comes from the environment).
#[derive(Debug, Clone, Default)]
pub struct S3Flags {
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

pub enum Source {
    Http(http::HttpSource),
    Hf(hf::HfSource),
    S3(s3::S3Source),
    Local(local::LocalSource),
}

impl Source {
    /// Parses `--source`. `dest` matters for `pvc://` (mounted at the destination). Every
    /// endpoint the source will talk to must be `https://` unless `allow_insecure_http`.
    pub fn parse(
        uri: &str,
        dest: &Path,
        s3: &S3Flags,
        http: reqwest::Client,
        allow_insecure_http: bool,
    ) -> Result<Self> {
        let source = Self::parse_any(uri, dest, s3, http)?;
        if let Some(endpoint) = source.endpoint() {
            http::require_https(&endpoint, allow_insecure_http)?;
        }
        Ok(source)
    }

    /// The URL a remote source talks to (`None` for local files).
    pub fn endpoint(&self) -> Option<String> {
        match self {
            Self::Http(s) => Some(s.file_url("")),
            Self::Hf(s) => Some(s.endpoint().to_string()),
            Self::S3(s) => Some(s.endpoint().to_string()),
            Self::Local(_) => None,
        }
    }

    fn parse_any(uri: &str, dest: &Path, s3: &S3Flags, http: reqwest::Client) -> Result<Self> {
        let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            Ok(Self::Http(http::HttpSource::new(uri, http)))
        } else if let Some(rest) = uri.strip_prefix("hf://") {
            let (repo, revision) = rest
                .split_once('@')
                .filter(|(r, v)| r.contains('/') && !v.is_empty())
                .ok_or_else(|| ModelFilesError::BadSource(uri.to_string()))?;
            Ok(Self::Hf(hf::HfSource::from_env(repo, revision, http)))
        } else if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ModelFilesError::BadSource(uri.to_string()));
            }
            let config = S3Config::from_env(s3.endpoint.as_deref(), s3.region.as_deref());
            Ok(Self::S3(s3::S3Source::new(config, http, bucket, prefix)))
        } else if let Some(rest) = uri.strip_prefix("pvc://") {
            Ok(Self::Local(local::LocalSource::pvc(rest, dest)))
        } else if let Some(path) = uri.strip_prefix("file://") {
            Ok(Self::Local(local::LocalSource::path(
                PathBuf::from(path),
                dest,
            )))
        } else if !uri.is_empty() && !uri.contains("://") {
            Ok(Self::Local(local::LocalSource::path(
                PathBuf::from(uri),
                dest,
            )))
        } else {
            Err(ModelFilesError::BadSource(uri.to_string()))
        }
    }

    /// The files the source publishes, `None` when it cannot list them. Bounded in time and
    /// size by `policy.listing`.
    pub async fn listing(&self, policy: &RetryPolicy) -> Result<Option<Vec<RemoteFile>>> {
        match self {
            Self::Http(s) => s.listing(policy).await,
            Self::Hf(s) => s.listing(policy).await.map(Some),
            Self::S3(s) => s.listing(policy).await.map(Some),
            Self::Local(s) => s.listing().map(Some),
        }
    }

    /// Delivers `rel` to `dest/rel`, checked against `expect`.
    pub async fn fetch(
        &self,
        rel: &str,
        dest: &Path,
        expect: &Expect,
        policy: &RetryPolicy,
    ) -> Result<FileEntry> {
        let target = dest.join(rel);
        match self {
            Self::Http(s) => s.fetch(rel, &target, expect, policy).await,
            Self::Hf(s) => s.fetch(rel, &target, expect, policy).await,
            Self::S3(s) => s.fetch(rel, &target, expect, policy).await,
            Self::Local(s) => s.fetch(rel, &target, expect),
        }
    }

    /// Whether files are verified where they lie (nothing is written, maybe not even the
    /// manifest: a PVC is mounted read-only).
    pub fn in_place(&self) -> bool {
        matches!(self, Self::Local(s) if s.in_place())
    }
}

/// Joins a base URL and a relative path, encoding each path segment.
pub fn join_url(base: &str, rel: &str) -> String {
    let segments: Vec<String> = rel
        .split('/')
        .map(|s| super::s3::uri_encode(s, false))
        .collect();
    format!("{}/{}", base.trim_end_matches('/'), segments.join("/"))
}

/// A `GET` for bytes `offset..` of `url`.
pub fn ranged_get(client: &reqwest::Client, url: &str, offset: u64) -> reqwest::RequestBuilder {
    let req = client.get(url);
    if offset > 0 {
        req.header("range", format!("bytes={offset}-"))
    } else {
        req
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<Source> {
        Source::parse(
            uri,
            Path::new("/models"),
            &S3Flags::default(),
            reqwest::Client::new(),
            false,
        )
    }

    #[test]
    fn parses_every_source_kind() {
        assert!(matches!(parse("https://h/m").unwrap(), Source::Http(_)));
        assert!(matches!(
            parse("http://h/m"),
            Err(ModelFilesError::InsecureHttp(_))
        ));
        assert!(matches!(
            parse("hf://org/m@0123abc").unwrap(),
            Source::Hf(_)
        ));
        assert!(matches!(parse("s3://b/p/q").unwrap(), Source::S3(_)));
        assert!(matches!(
            parse("pvc://claim/dir").unwrap(),
            Source::Local(_)
        ));
        assert!(matches!(parse("/data/m").unwrap(), Source::Local(_)));
    }

    #[test]
    fn rejects_a_hugging_face_repo_without_revision_and_unknown_schemes() {
        assert!(matches!(
            parse("hf://org/m"),
            Err(ModelFilesError::BadSource(_))
        ));
        assert!(matches!(
            parse("ftp://h/m"),
            Err(ModelFilesError::BadSource(_))
        ));
        assert!(matches!(
            parse("s3:///p"),
            Err(ModelFilesError::BadSource(_))
        ));
    }

    #[test]
    fn joins_urls_encoding_segments() {
        assert_eq!(
            join_url("http://h/m/", "a b/c.gguf"),
            "http://h/m/a%20b/c.gguf"
        );
    }
}
