//! S3 multipart upload for files larger than one part (a single PUT carries at most 5 GiB, and
//! smaller parts make a failure cost one part, not the whole file). Parts are read in order and
//! hashed as they go; if the file does not match its manifest entry, the upload is aborted
//! before completion, so S3 never shows a wrong object.

use reqwest::Method;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::hash::sha256_bytes;
use super::manifest::FileEntry;
use super::s3::{check, tag, S3Client, EMPTY_SHA256};
use super::{ModelFilesError, Result};

/// S3 allows at most this many parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Default part size; `DSR_S3_PART_MB` overrides it (S3's minimum is 5 MiB).
const DEFAULT_PART_MB: u64 = 64;

/// Part size for a file of `size` bytes.
pub fn part_size(size: u64) -> u64 {
    let mb = std::env::var("DSR_S3_PART_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_PART_MB)
        .max(5);
    (mb << 20).max(size.div_ceil(MAX_PARTS))
}

fn err(op: &'static str, key: &str, reason: impl std::fmt::Display) -> ModelFilesError {
    ModelFilesError::S3 {
        op,
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// Uploads `file` (which must match `entry`) to `key` in parts of `part` bytes.
pub async fn upload(
    client: &S3Client,
    bucket: &str,
    key: &str,
    entry: &FileEntry,
    mut file: tokio::fs::File,
    size: u64,
    src: &std::path::Path,
) -> Result<()> {
    let upload_id = create(client, bucket, key).await?;
    let result = upload_parts(client, bucket, key, &upload_id, entry, &mut file, size, src).await;
    match result {
        Ok(etags) => complete(client, bucket, key, &upload_id, &etags).await,
        Err(e) => {
            let query = [("uploadId".to_string(), upload_id.clone())];
            let abort = client.request(Method::DELETE, bucket, key, &query, &[], EMPTY_SHA256);
            if let Err(a) = abort.send().await {
                tracing::warn!(key, error = %a, "could not abort the multipart upload");
            }
            Err(e)
        }
    }
}

async fn create(client: &S3Client, bucket: &str, key: &str) -> Result<String> {
    let query = [("uploads".to_string(), String::new())];
    let req = client.request(Method::POST, bucket, key, &query, &[], EMPTY_SHA256);
    let resp = check(
        "CreateMultipartUpload",
        key,
        client.send("CreateMultipartUpload", key, req).await?,
    )
    .await?;
    let xml = resp
        .text()
        .await
        .map_err(|e| err("CreateMultipartUpload", key, e))?;
    tag(&xml, "UploadId")
        .map(str::to_string)
        .ok_or_else(|| err("CreateMultipartUpload", key, "no UploadId in the answer"))
}

#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    client: &S3Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    entry: &FileEntry,
    file: &mut tokio::fs::File,
    size: u64,
    src: &std::path::Path,
) -> Result<Vec<String>> {
    let part = part_size(size);
    let mut hasher = Sha256::new();
    let mut etags = Vec::new();
    let mut sent = 0u64;
    while sent < size {
        let len = part.min(size - sent) as usize;
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf)
            .await
            .map_err(|e| ModelFilesError::io(src, e))?;
        hasher.update(&buf);
        sent += len as u64;
        if sent == size {
            let actual = hex::encode(std::mem::take(&mut hasher).finalize());
            if actual != entry.sha256 {
                return Err(ModelFilesError::DigestMismatch {
                    path: src.display().to_string(),
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
        }
        let number = etags.len() + 1;
        let query = [
            ("partNumber".to_string(), number.to_string()),
            ("uploadId".to_string(), upload_id.to_string()),
        ];
        let sha = sha256_bytes(&buf);
        let req = client
            .request(Method::PUT, bucket, key, &query, &[], &sha)
            .body(buf);
        let resp = check(
            "UploadPart",
            key,
            client.send("UploadPart", key, req).await?,
        )
        .await?;
        let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok());
        etags.push(
            etag.ok_or_else(|| err("UploadPart", key, "no ETag"))?
                .to_string(),
        );
        tracing::debug!(key, part = number, bytes = sent, "part uploaded");
    }
    Ok(etags)
}

async fn complete(
    client: &S3Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    etags: &[String],
) -> Result<()> {
    let parts: String = etags
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                i + 1
            )
        })
        .collect();
    let body = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
    let query = [("uploadId".to_string(), upload_id.to_string())];
    let sha = sha256_bytes(body.as_bytes());
    let req = client
        .request(Method::POST, bucket, key, &query, &[], &sha)
        .body(body);
    let resp = check(
        "CompleteMultipartUpload",
        key,
        client.send("CompleteMultipartUpload", key, req).await?,
    )
    .await?;
    // S3 can answer 200 with an error document when completion fails late.
    let xml = resp
        .text()
        .await
        .map_err(|e| err("CompleteMultipartUpload", key, e))?;
    match tag(&xml, "Code") {
        Some(code) => Err(err("CompleteMultipartUpload", key, code)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_that_ten_thousand_cover_the_file() {
        assert_eq!(part_size(1 << 30), DEFAULT_PART_MB << 20);
        let huge = 1u64 << 40; // 1 TiB: 64 MiB parts would need 16384
        assert_eq!(part_size(huge), huge.div_ceil(MAX_PARTS));
    }
}
