//! A small S3 client: AWS Signature Version 4 (signing in `sigv4`) over reqwest for GET, PUT, LIST (v2), DELETE and
//! HEAD, path-style addressing (`ENDPOINT/BUCKET/KEY`, what MinIO, Ceph, moto and custom
//! endpoints expect; AWS accepts it too). The AWS SDK is far too heavy to compile for five calls.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`;
//! without them requests go unsigned (public buckets).

use reqwest::{Method, RequestBuilder, StatusCode};

use super::hash::sha256_bytes;
pub use super::sigv4::{authorization, canonical_query, uri_encode, SignInput, EMPTY_SHA256};
use super::small::{self, SmallError, SmallLimits};
use super::{ModelFilesError, Result};

#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct S3Config {
    /// Scheme, host and port, no trailing slash.
    pub endpoint: String,
    pub region: String,
    pub credentials: Option<Credentials>,
}

impl S3Config {
    /// From flags, falling back to `AWS_ENDPOINT_URL`, `AWS_REGION` / `AWS_DEFAULT_REGION`
    /// (default us-east-1) and the standard credential variables.
    pub fn from_env(endpoint: Option<&str>, region: Option<&str>) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = region
            .map(str::to_string)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = endpoint
            .map(str::to_string)
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key), Some(secret_key)) => Some(Credentials {
                access_key,
                secret_key,
                session_token: env("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        };
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region,
            credentials,
        }
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

#[derive(Clone)]
pub struct S3Client {
    pub http: reqwest::Client,
    pub config: S3Config,
    /// Bounds on the calls whose answer is read whole (LIST, small GETs, HEAD, DELETE,
    /// CreateBucket, error bodies); uploads and downloads have their own.
    pub limits: SmallLimits,
}

impl S3Client {
    pub fn new(http: reqwest::Client, config: S3Config) -> Self {
        Self {
            http,
            config,
            limits: SmallLimits::default(),
        }
    }

    pub fn with_limits(mut self, limits: SmallLimits) -> Self {
        self.limits = limits;
        self
    }

    /// A call whose whole answer is read: status and body, within `self.limits`.
    async fn small(
        &self,
        op: &'static str,
        key: &str,
        req: RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>)> {
        small::send(req, self.limits)
            .await
            .map_err(|e| s3_err(op, key, e))
    }

    /// `Ok` for a 2xx, else an error carrying S3's `<Code>` and `<Message>`.
    fn ok(op: &'static str, key: &str, status: StatusCode, body: &[u8]) -> Result<()> {
        if status.is_success() {
            return Ok(());
        }
        Err(status_err(op, key, status, &String::from_utf8_lossy(body)))
    }

    /// `ENDPOINT/BUCKET/KEY` with the key encoded, for display and errors.
    pub fn url(&self, bucket: &str, key: &str) -> String {
        format!("{}/{}", self.config.endpoint, self.path(bucket, key))
    }

    fn path(&self, bucket: &str, key: &str) -> String {
        if key.is_empty() {
            uri_encode(bucket, false)
        } else {
            format!("{}/{}", uri_encode(bucket, false), uri_encode(key, true))
        }
    }

    /// A signed request. `extra` headers are sent and signed (lower-case names).
    pub fn request(
        &self,
        method: Method,
        bucket: &str,
        key: &str,
        query: &[(String, String)],
        extra: &[(String, String)],
        payload_sha256: &str,
    ) -> RequestBuilder {
        let uri = format!("/{}", self.path(bucket, key));
        let qs = canonical_query(query);
        let url = if qs.is_empty() {
            format!("{}{uri}", self.config.endpoint)
        } else {
            format!("{}{uri}?{qs}", self.config.endpoint)
        };
        let mut builder = self.http.request(method.clone(), &url);
        let mut headers: Vec<(String, String)> = extra.to_vec();
        if let Some(creds) = &self.config.credentials {
            let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            headers.push(("x-amz-date".into(), amz_date.clone()));
            headers.push(("x-amz-content-sha256".into(), payload_sha256.into()));
            if let Some(token) = &creds.session_token {
                headers.push(("x-amz-security-token".into(), token.clone()));
            }
            let auth = authorization(
                creds,
                &self.config.region,
                &SignInput {
                    method: method.as_str(),
                    host: &host_of(&self.config.endpoint),
                    canonical_uri: &uri,
                    query,
                    headers: &headers,
                    payload_sha256,
                    amz_date: &amz_date,
                },
            );
            builder = builder.header("authorization", auth);
        }
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        builder
    }

    /// GET of an object from byte `from` on (a resumed download).
    pub fn get(&self, bucket: &str, key: &str, from: u64) -> RequestBuilder {
        let range = (from > 0).then(|| ("range".to_string(), format!("bytes={from}-")));
        let extra: Vec<_> = range.into_iter().collect();
        self.request(Method::GET, bucket, key, &[], &extra, EMPTY_SHA256)
    }

    /// A small object whole (manifests and markers); `None` when it does not exist.
    pub async fn get_small(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let (status, body) = self.small("GET", key, self.get(bucket, key, 0)).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Self::ok("GET", key, status, &body)?;
        Ok(Some(body))
    }

    pub async fn put_bytes(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
        let sha = sha256_bytes(&body);
        let req = self.request(Method::PUT, bucket, key, &[], &[], &sha);
        let resp = self.send("PUT", key, req.body(body)).await?;
        check("PUT", key, resp).await.map(drop)
    }

    /// PUT with a streamed body whose SHA256 is known beforehand (S3 checks it on arrival).
    pub async fn put_stream(
        &self,
        bucket: &str,
        key: &str,
        body: reqwest::Body,
        size: u64,
        sha256: &str,
    ) -> Result<()> {
        let meta = [("x-amz-meta-sha256".to_string(), sha256.to_string())];
        let req = self.request(Method::PUT, bucket, key, &[], &meta, sha256);
        let req = req.header("content-length", size).body(body);
        let resp = self.send("PUT", key, req).await?;
        check("PUT", key, resp).await.map(drop)
    }

    /// Size of an object, `None` when it does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<u64>> {
        let req = self.request(Method::HEAD, bucket, key, &[], &[], EMPTY_SHA256);
        let resp = tokio::time::timeout(self.limits.timeout, self.send("HEAD", key, req))
            .await
            .map_err(|_| s3_err("HEAD", key, SmallError::Timeout(self.limits.timeout)))??;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check("HEAD", key, resp).await?;
        // Not `content_length()`: for a HEAD that is the (empty) body's length.
        let length = resp.headers().get("content-length");
        Ok(length
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let req = self.request(Method::DELETE, bucket, key, &[], &[], EMPTY_SHA256);
        let (status, body) = self.small("DELETE", key, req).await?;
        Self::ok("DELETE", key, status, &body)
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let req = self.request(Method::PUT, bucket, "", &[], &[], EMPTY_SHA256);
        let (status, body) = self.small("CreateBucket", bucket, req).await?;
        Self::ok("CreateBucket", bucket, status, &body)
    }

    /// Every object under `prefix` (ListObjectsV2, following continuation tokens).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), prefix.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token".into(), t.clone()));
            }
            let req = self.request(Method::GET, bucket, "", &query, &[], EMPTY_SHA256);
            let (status, body) = self.small("LIST", prefix, req).await?;
            Self::ok("LIST", prefix, status, &body)?;
            let xml = String::from_utf8_lossy(&body);
            out.extend(parse_list(&xml));
            if out.len() > MAX_LISTED_OBJECTS {
                return Err(s3_err(
                    "LIST",
                    prefix,
                    format!("more than {MAX_LISTED_OBJECTS} objects under the prefix"),
                ));
            }
            token = tag(&xml, "NextContinuationToken").map(xml_unescape);
            if tag(&xml, "IsTruncated") != Some("true") || token.is_none() {
                return Ok(out);
            }
        }
    }

    pub(crate) async fn send(
        &self,
        op: &'static str,
        key: &str,
        req: RequestBuilder,
    ) -> Result<reqwest::Response> {
        req.send()
            .await
            .map_err(|e| s3_err(op, key, small::describe(e)))
    }
}

/// Pages of a listing are each capped by `limits`; this caps how many pages' worth of objects
/// a prefix may hold (a model is tens of files, not a bucket's worth).
const MAX_LISTED_OBJECTS: usize = 100_000;

fn s3_err(op: &'static str, key: &str, e: impl std::fmt::Display) -> ModelFilesError {
    ModelFilesError::S3 {
        op,
        key: key.to_string(),
        reason: e.to_string(),
    }
}

/// Turns a non-2xx answer into an error carrying S3's `<Code>` and `<Message>`.
pub(crate) async fn check(
    op: &'static str,
    key: &str,
    resp: reqwest::Response,
) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // Read for its Code and Message only: bounded in size and time.
    let limits = SmallLimits::default();
    let body = tokio::time::timeout(limits.timeout, small::read_body(resp, 64 << 10)).await;
    let body = body.ok().and_then(|b| b.ok()).unwrap_or_default();
    Err(status_err(op, key, status, &String::from_utf8_lossy(&body)))
}

fn status_err(op: &'static str, key: &str, status: StatusCode, body: &str) -> ModelFilesError {
    let code = tag(body, "Code").unwrap_or("");
    let message = tag(body, "Message").unwrap_or("");
    s3_err(
        op,
        key,
        format!("HTTP {} {code} {message}", status.as_u16()).trim(),
    )
}

/// `host[:port]` of an endpoint URL exactly as reqwest sends it in the Host header, which is
/// what SigV4 must sign: the host lower-cased, the port kept when it is not the scheme's default
/// (`https://h:9000` signs `h:9000`) and dropped when it is (`https://h:443` signs `h`, as
/// hyper sends `Host: h`; signing `h:443` fails with SignatureDoesNotMatch).
fn host_of(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(url) => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            }
        }
        Err(_) => {
            let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
            rest.split('/').next().unwrap_or(rest).to_ascii_lowercase()
        }
    }
}

/// The text of the first `<name>...</name>` in `xml`.
pub(crate) fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#13;", "\r")
        .replace("&amp;", "&")
}

fn parse_list(xml: &str) -> Vec<Object> {
    xml.split("<Contents>")
        .skip(1)
        .filter_map(|block| {
            let key = xml_unescape(tag(block, "Key")?);
            let size = tag(block, "Size")?.trim().parse().ok()?;
            Some(Object { key, size })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_list_objects_v2_page() {
        let xml = "<ListBucketResult><Prefix>p/</Prefix><IsTruncated>false</IsTruncated>\
            <Contents><Key>p/a&amp;b.gguf</Key><Size>12</Size></Contents>\
            <Contents><Key>p/c</Key><Size>0</Size></Contents></ListBucketResult>";
        let objects = parse_list(xml);
        assert_eq!(
            objects,
            [
                Object {
                    key: "p/a&b.gguf".into(),
                    size: 12
                },
                Object {
                    key: "p/c".into(),
                    size: 0
                }
            ]
        );
    }

    #[test]
    fn signs_the_host_as_reqwest_sends_it() {
        assert_eq!(host_of("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(
            host_of("https://minio.internal:9000"),
            "minio.internal:9000"
        );
        assert_eq!(
            host_of("https://s3.eu-west-1.amazonaws.com:443"),
            "s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(host_of("http://Minio.Internal:80/"), "minio.internal");
        assert_eq!(host_of("http://[::1]:9000"), "[::1]:9000");
    }
}
