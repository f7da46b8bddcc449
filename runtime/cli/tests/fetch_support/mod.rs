//! Shared by the fetch, verify and backup tests: a real HTTP file server on 127.0.0.1 that can
//! cut, stall, corrupt or refuse a file; running the built binary; a real `moto_server`.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use deepseek_test_support::ChildGuard;
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic bytes that differ at every offset a test might cut at.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 31 + seed as u64 * 7 + (i as u64 >> 8)) % 251) as u8)
        .collect()
}

/// What the server does with one file.
#[derive(Clone, Debug)]
pub enum Behaviour {
    Normal,
    /// The first request gets `after` bytes, then the connection is cut.
    CutOnce {
        after: usize,
    },
    /// The first request gets `after` bytes, then nothing more, connection left open.
    StallOnce {
        after: usize,
    },
    /// Serves the bytes with one flipped (a corrupted mirror).
    Corrupt,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Files {
    files: HashMap<String, (Vec<u8>, Behaviour)>,
    served: HashMap<String, usize>,
    seen: Vec<Seen>,
}

#[derive(Clone, Default)]
pub struct FileServer {
    inner: Arc<Mutex<Files>>,
    pub url: String,
}

impl FileServer {
    /// Starts on an OS-chosen port; lives as long as the test's runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = FileServer {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..FileServer::default()
        };
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    /// Serves `bytes` at `/path` (path without the leading '/').
    pub fn add(&self, path: &str, bytes: Vec<u8>, behaviour: Behaviour) {
        let mut inner = self.inner.lock().unwrap();
        inner.files.insert(path.to_string(), (bytes, behaviour));
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        let inner = self.inner.lock().unwrap();
        inner
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

async fn serve(State(server): State<FileServer>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/').to_string();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let range = header("range");
    let (bytes, behaviour, first) = {
        let mut inner = server.inner.lock().unwrap();
        inner.seen.push(Seen {
            path: path.clone(),
            range: range.clone(),
            authorization: header("authorization"),
        });
        let Some((bytes, behaviour)) = inner.files.get(&path).cloned() else {
            return Response::builder()
                .status(404)
                .body(Body::from("not found"))
                .unwrap();
        };
        let count = inner.served.entry(path.clone()).or_default();
        *count += 1;
        (bytes, behaviour, *count == 1)
    };
    let mut bytes = bytes;
    if matches!(behaviour, Behaviour::Corrupt) {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
    }
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    let total = bytes.len();
    let body_bytes = bytes[start.min(total)..].to_vec();
    let mut resp = Response::builder().header("content-length", body_bytes.len());
    resp = if start > 0 {
        resp.status(StatusCode::PARTIAL_CONTENT).header(
            "content-range",
            format!("bytes {start}-{}/{total}", total - 1),
        )
    } else {
        resp.status(StatusCode::OK)
    };
    let body = match behaviour {
        Behaviour::CutOnce { after } if first => {
            let head = bytes::Bytes::from(body_bytes[..after].to_vec());
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
                vec![Ok(head), Err(std::io::Error::other("cut"))];
            Body::from_stream(futures::stream::iter(chunks))
        }
        Behaviour::StallOnce { after } if first => {
            let head = bytes::Bytes::from(body_bytes[..after].to_vec());
            let stream = futures::stream::unfold(Some(head), |state| async move {
                match state {
                    Some(h) => Some((Ok::<_, std::io::Error>(h), None)),
                    None => {
                        futures::future::pending::<()>().await;
                        None
                    }
                }
            });
            Body::from_stream(stream)
        }
        _ => Body::from(body_bytes),
    };
    resp.body(body).unwrap()
}

/// Runs the built binary with a clean environment for the variables it reads.
pub async fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"));
    cmd.args(args);
    for var in [
        "HF_ENDPOINT",
        "HF_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "DSR_VERIFY",
        "DSR_MANIFEST",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
    // The fake servers here speak plain http on 127.0.0.1; `fetch` refuses that by default
    // (fetch_faults.rs checks the refusal by passing DSR_ALLOW_INSECURE_HTTP=false).
    cmd.env("DSR_ALLOW_INSECURE_HTTP", "true");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the binary did not finish within 120 s")
        .unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files under `dir` (relative paths, sorted), to assert nothing stray was left behind.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.path().is_dir() {
                walk(&e.path(), &path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// A model directory with files and the manifest `fetch` writes (fetched from a local copy).
pub async fn model_dir(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for (rel, bytes) in files {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let model = tmp.path().join("model");
    let out = run_cli(
        &[
            "fetch",
            "--source",
            src.to_str().unwrap(),
            "--dest",
            model.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    (tmp, model)
}

/// A real `moto_server` (PyPI `moto[server]`, installed by scripts/test-deps.sh) on 127.0.0.1.
pub struct Moto {
    _child: ChildGuard,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

/// Creates an IAM user with an access key allowed everything (the 3 unauthenticated actions
/// `INITIAL_NO_AUTH_ACTION_COUNT=3` grants) and prints the key.
const IAM_SETUP: &str = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="runtime")
key = iam.create_access_key(UserName="runtime")["AccessKey"]
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
iam.put_user_policy(UserName="runtime", PolicyName="all", PolicyDocument=json.dumps(policy))
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

impl Moto {
    pub fn start() -> Self {
        Self::spawn(false)
    }

    /// A server that checks every request's SigV4 signature against a real IAM access key.
    pub fn start_with_auth() -> Self {
        let mut moto = Self::spawn(true);
        let python = deepseek_test_support::venv_bin("python");
        let out = std::process::Command::new(python)
            .args(["-c", IAM_SETUP, &moto.endpoint])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (ak, sk) = text.trim().split_once(' ').unwrap();
        moto.access_key = ak.to_string();
        moto.secret_key = sk.to_string();
        moto
    }

    fn spawn(auth: bool) -> Self {
        let bin = deepseek_test_support::venv_bin("moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run `make test-deps` (scripts/test-deps.sh installs moto[server])",
            bin.display()
        );
        let port = deepseek_test_support::free_port();
        let mut cmd = std::process::Command::new(bin);
        if auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
        }
        let child = ChildGuard(
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    _child: child,
                    endpoint,
                    access_key: "testing".into(),
                    secret_key: "testing".into(),
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not listen on {endpoint} within 30 s");
    }

    /// Environment for the binary: moto's endpoint and (any) credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// A client of the runtime's own S3 module against this server.
    pub fn client(&self) -> deepseek_model_files::s3::S3Client {
        use deepseek_model_files::s3::{Credentials, S3Client, S3Config};
        S3Client::new(
            reqwest::Client::new(),
            S3Config {
                endpoint: self.endpoint.clone(),
                region: "us-east-1".into(),
                credentials: Some(Credentials {
                    access_key: self.access_key.clone(),
                    secret_key: self.secret_key.clone(),
                    session_token: None,
                }),
            },
        )
    }
}

pub fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
