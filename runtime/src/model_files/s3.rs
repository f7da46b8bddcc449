//! A small S3 client: AWS Signature Version 4 over reqwest for GET, PUT, LIST (v2), DELETE and
//! HEAD, path-style addressing (`ENDPOINT/BUCKET/KEY`, what MinIO, Ceph, moto and custom
//! endpoints expect; AWS accepts it too). The AWS SDK is far too heavy to compile for five calls.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`;
//! without them requests go unsigned (public buckets).

use hmac::{Hmac, Mac};
use reqwest::{Method, RequestBuilder};
use sha2::{Digest, Sha256};

use super::hash::sha256_bytes;
use super::{ModelFilesError, Result};

/// SHA256 of an empty payload (GET, HEAD, DELETE, LIST).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

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

/// Percent-encodes as SigV4 wants: unreserved characters kept, '/' kept when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// What SigV4 signs about one request.
pub struct SignInput<'a> {
    pub method: &'a str,
    pub host: &'a str,
    /// Already encoded (see [`uri_encode`]).
    pub canonical_uri: &'a str,
    /// Raw (unencoded) query pairs.
    pub query: &'a [(String, String)],
    /// Lower-case names; `host` is added by the signer.
    pub headers: &'a [(String, String)],
    pub payload_sha256: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// The canonical query string: pairs encoded, then sorted.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// The `Authorization` header value for `input`.
pub fn authorization(creds: &Credentials, region: &str, input: &SignInput<'_>) -> String {
    let mut headers: Vec<(String, String)> = input.headers.to_vec();
    headers.push(("host".into(), input.host.to_string()));
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.canonical_uri,
        canonical_query(input.query),
        canonical_headers,
        signed,
        input.payload_sha256
    );
    let date = &input.amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        input.amz_date,
        sha256_bytes(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, "s3");
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex::encode(hmac(&k_signing, &string_to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed},Signature={signature}",
        creds.access_key
    )
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
}

impl S3Client {
    pub fn new(http: reqwest::Client, config: S3Config) -> Self {
        Self { http, config }
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
        let resp = self.send("GET", key, self.get(bucket, key, 0)).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check("GET", key, resp).await?;
        let body = resp.bytes().await.map_err(|e| s3_err("GET", key, e))?;
        Ok(Some(body.to_vec()))
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
        let resp = self.send("HEAD", key, req).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
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
        let resp = self.send("DELETE", key, req).await?;
        check("DELETE", key, resp).await.map(drop)
    }

    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let req = self.request(Method::PUT, bucket, "", &[], &[], EMPTY_SHA256);
        let resp = self.send("CreateBucket", bucket, req).await?;
        check("CreateBucket", bucket, resp).await.map(drop)
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
            let resp = check("LIST", prefix, self.send("LIST", prefix, req).await?).await?;
            let xml = resp.text().await.map_err(|e| s3_err("LIST", prefix, e))?;
            out.extend(parse_list(&xml));
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
        req.send().await.map_err(|e| s3_err(op, key, e))
    }
}

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
    let body = resp.text().await.unwrap_or_default();
    let code = tag(&body, "Code").unwrap_or("");
    let message = tag(&body, "Message").unwrap_or("");
    Err(s3_err(
        op,
        key,
        format!("HTTP {} {code} {message}", status.as_u16()).trim(),
    ))
}

/// `host[:port]` of an endpoint URL, as the Host header carries it.
fn host_of(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
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

/// SHA256 helper for callers that sign a payload they hold.
pub fn payload_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The "GET Object" example of the AWS SigV4 documentation (signed Range header).
    #[test]
    fn signs_the_aws_documentation_get_object_example() {
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let headers = vec![
            ("range".to_string(), "bytes=0-9".to_string()),
            ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let auth = authorization(
            &creds,
            "us-east-1",
            &SignInput {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                canonical_uri: "/test.txt",
                query: &[],
                headers: &headers,
                payload_sha256: EMPTY_SHA256,
                amz_date: "20130524T000000Z",
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn encodes_keys_keeping_slashes_and_query_values_without() {
        assert_eq!(uri_encode("a b/c+d~", true), "a%20b/c%2Bd~");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        let q = [
            ("prefix".into(), "m/x y".into()),
            ("list-type".into(), "2".into()),
        ];
        assert_eq!(canonical_query(&q), "list-type=2&prefix=m%2Fx%20y");
    }

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
        assert_eq!(host_of("http://127.0.0.1:5000/"), "127.0.0.1:5000");
    }
}
