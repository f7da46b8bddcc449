//! `hf://REPO@REVISION`: a Hugging Face model repository at a pinned revision. The endpoint is
//! `HF_ENDPOINT` (default https://huggingface.co), the token `HF_TOKEN` (sent as a bearer
//! token; reqwest drops it when a download redirects to another host, such as the CDN).
//! Without pins the file list, sizes and LFS SHA256s come from
//! `/api/models/REPO/revision/REVISION?blobs=true`; files come from `/REPO/resolve/REVISION/PATH`.

use std::path::Path;

use serde::Deserialize;

use super::{join_url, ranged_get, RemoteFile};
use crate::download::{download, Expect, RetryPolicy};
use crate::manifest::{is_sha256_hex, FileEntry};
use crate::small;
use crate::{ModelFilesError, Result};

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

pub struct HfSource {
    endpoint: String,
    repo: String,
    revision: String,
    token: Option<String>,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct ModelInfo {
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Deserialize)]
struct Lfs {
    sha256: String,
    #[serde(default)]
    size: Option<u64>,
}

impl HfSource {
    pub fn from_env(repo: &str, revision: &str, client: reqwest::Client) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = env("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            repo: repo.to_string(),
            revision: revision.to_string(),
            token: env("HF_TOKEN").or_else(|| env("HUGGING_FACE_HUB_TOKEN")),
            client,
        }
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn listing(&self, policy: &RetryPolicy) -> Result<Vec<RemoteFile>> {
        let url = format!(
            "{}/api/models/{}/revision/{}?blobs=true",
            self.endpoint,
            self.repo,
            super::super::s3::uri_encode(&self.revision, false)
        );
        let (status, body) = small::send(self.authed(self.client.get(&url)), policy.listing)
            .await
            .map_err(|e| e.into_error(&url, "file list"))?;
        if !status.is_success() {
            return Err(ModelFilesError::HttpStatus {
                url,
                status: status.as_u16(),
                body: small::snippet(&body, 200),
            });
        }
        let info: ModelInfo =
            serde_json::from_slice(&body).map_err(|e| ModelFilesError::Transport {
                url: url.clone(),
                reason: format!("file list is not the expected JSON: {e}"),
            })?;
        Ok(info
            .siblings
            .into_iter()
            .filter(|s| s.rfilename != ".gitattributes")
            .map(|s| {
                let lfs = s.lfs.filter(|l| is_sha256_hex(&l.sha256));
                RemoteFile {
                    path: s.rfilename,
                    size: lfs.as_ref().and_then(|l| l.size).or(s.size),
                    sha256: lfs.map(|l| l.sha256.to_ascii_lowercase()),
                }
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
        let base = format!("{}/{}/resolve/{}", self.endpoint, self.repo, self.revision);
        let url = join_url(&base, rel);
        let request = |offset| self.authed(ranged_get(&self.client, &url, offset));
        download(rel, &url, &request, target, expect, policy).await
    }
}
