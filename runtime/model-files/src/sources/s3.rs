//! `s3://BUCKET/PREFIX`: files under a prefix of an S3-compatible bucket. The file list comes
//! from the pins, from `PREFIX/deepseek-manifest.json` when present (a backup generation), or
//! from listing the prefix.

use std::path::Path;

use super::RemoteFile;
use crate::download::{download, Expect, RetryPolicy};
use crate::manifest::{is_manifest_file, FileEntry, Manifest, MANIFEST_NAME};
use crate::s3::{S3Client, S3Config};
use crate::Result;

pub struct S3Source {
    client: S3Client,
    bucket: String,
    /// Without leading or trailing '/'; empty for the whole bucket.
    prefix: String,
}

impl S3Source {
    pub fn new(config: S3Config, http: reqwest::Client, bucket: &str, prefix: &str) -> Self {
        Self {
            client: S3Client::new(http, config),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.client.config.endpoint
    }

    pub async fn listing(&self, policy: &RetryPolicy) -> Result<Vec<RemoteFile>> {
        let client = self.client.clone().with_limits(policy.listing);
        let manifest_key = self.key(MANIFEST_NAME);
        if let Some(bytes) = client.get_small(&self.bucket, &manifest_key).await? {
            let text = String::from_utf8_lossy(&bytes);
            let manifest = Manifest::parse(&text, &client.url(&self.bucket, &manifest_key))?;
            return Ok(manifest.files.iter().map(RemoteFile::from).collect());
        }
        let dir = self.key("");
        let objects = client.list(&self.bucket, &dir).await?;
        Ok(objects
            .into_iter()
            .filter_map(|o| {
                let rel = o.key.strip_prefix(&dir)?.to_string();
                let keep = !rel.is_empty() && !rel.ends_with('/') && !is_manifest_file(&rel);
                keep.then_some(RemoteFile {
                    path: rel,
                    size: Some(o.size),
                    sha256: None,
                })
            })
            .collect())
    }

    pub async fn fetch(
        &self,
        rel: &str,
        target: &Path,
        expect: &Expect,
        policy: &RetryPolicy,
    ) -> Result<FileEntry> {
        let key = self.key(rel);
        let url = self.client.url(&self.bucket, &key);
        let request = |offset| self.client.get(&self.bucket, &key, offset);
        download(rel, &url, &request, target, expect, policy).await
    }
}
