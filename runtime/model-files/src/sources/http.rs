//! `https://HOST/BASE` (or `http://`): files live under the base URL. The file list comes
//! from the pins, or from `BASE/deepseek-manifest.json` when the server publishes one (a
//! backup generation or a directory `fetch` filled, served over HTTP).

use std::path::Path;

use super::{join_url, ranged_get, RemoteFile};
use crate::download::{download, Expect, RetryPolicy};
use crate::manifest::{FileEntry, Manifest, MANIFEST_NAME};
use crate::{ModelFilesError, Result};

pub struct HttpSource {
    base: String,
    client: reqwest::Client,
}

impl HttpSource {
    pub fn new(base: &str, client: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        }
    }

    pub async fn listing(&self) -> Result<Option<Vec<RemoteFile>>> {
        let url = join_url(&self.base, MANIFEST_NAME);
        let transport = |e: reqwest::Error| ModelFilesError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
        let resp = self.client.get(&url).send().await.map_err(transport)?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        let text = resp.text().await.map_err(transport)?;
        let manifest = Manifest::parse(&text, &url)?;
        Ok(Some(manifest.files.iter().map(RemoteFile::from).collect()))
    }

    pub async fn fetch(
        &self,
        rel: &str,
        target: &Path,
        expect: &Expect,
        policy: &RetryPolicy,
    ) -> Result<FileEntry> {
        let url = join_url(&self.base, rel);
        let request = |offset| ranged_get(&self.client, &url, offset);
        download(rel, &url, &request, target, expect, policy).await
    }
}
