//! `fetch` against servers that misbehave on purpose (raw TCP on 127.0.0.1, so each can break
//! HTTP exactly where a real server or proxy would): a listing that never comes, a listing that
//! never ends, a file larger than its listed size, an endless body of unknown size, a
//! Content-Length that overflows with the resume offset. Each must end within seconds with a
//! clear error, never hang the init container. Also: plain http refused without the flag,
//! credentials never logged, a source URL naming the file itself, SigV4 with a port.
#![allow(clippy::unwrap_used)]

mod fetch_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fetch_support::{
    as_refs, pattern, run_cli, sha256, stderr, stdout, tree, Behaviour, FileServer, Moto,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the raw server answers to a request for a path.
type Answer = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

enum Reply {
    /// Read the request, then never answer (connection held open).
    Silence,
    /// These bytes (status line and headers included), then the connection closes.
    Bytes(Vec<u8>),
    /// These headers (chunked), then chunks of zeros forever.
    Endless(String),
}

/// A raw HTTP/1.1 server on 127.0.0.1 answering each request by `answer(path)`.
async fn raw_server(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve_one(conn, answer.clone()));
        }
    });
    url
}

async fn serve_one(mut conn: TcpStream, answer: Answer) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    match answer(&path) {
        Reply::Silence => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Bytes(b) => {
            let _ = conn.write_all(&b).await;
        }
        Reply::Endless(headers) => {
            if conn.write_all(headers.as_bytes()).await.is_err() {
                return;
            }
            let zeros = vec![0u8; 64 << 10];
            let frame = [
                format!("{:x}\r\n", zeros.len()).into_bytes(),
                zeros,
                b"\r\n".to_vec(),
            ]
            .concat();
            while conn.write_all(&frame).await.is_ok() {}
        }
    }
}

const CHUNKED_OK: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

fn manifest(path: &str, size: u64, sha: &str) -> String {
    format!(r#"{{"version":1,"files":[{{"path":"{path}","size":{size},"sha256":"{sha}"}}]}}"#)
}

fn ok_json(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs `fetch` and checks it ended within `within`.
async fn fetch_within(within: Duration, args: &[&str]) -> std::process::Output {
    let started = Instant::now();
    let out = run_cli(args, &[]).await;
    let took = started.elapsed();
    assert!(
        took < within,
        "fetch took {took:?} (limit {within:?}): {}",
        stderr(&out)
    );
    out
}

#[tokio::test]
async fn a_listing_that_never_comes_times_out_with_a_clear_error() {
    let url = raw_server(Arc::new(|_: &str| Reply::Silence)).await;
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let out = fetch_within(
        Duration::from_secs(20),
        &[
            "fetch",
            "--source",
            &format!("{url}/m"),
            "--dest",
            d,
            "--timeout-secs",
            "2",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("deepseek-manifest.json") && err.contains("no complete answer within 2s"),
        "{err}"
    );
}

#[tokio::test]
async fn a_listing_that_never_ends_is_cut_at_the_cap() {
    let url = raw_server(Arc::new(|_: &str| Reply::Endless(CHUNKED_OK.into()))).await;
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let out = fetch_within(
        Duration::from_secs(20),
        &[
            "fetch",
            "--source",
            &format!("{url}/m"),
            "--dest",
            d,
            "--max-listing-bytes",
            "1048576",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("manifest larger than the 1048576 bytes allowed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_larger_than_its_listed_size_is_refused_as_soon_as_it_overflows() {
    // The manifest says 1000 bytes; the file endpoint streams zeros without end.
    let listed = manifest("m.gguf", 1000, &sha256(&[0u8; 1000]));
    let url = raw_server(Arc::new(move |path: &str| {
        if path.ends_with("deepseek-manifest.json") {
            Reply::Bytes(ok_json(&listed))
        } else {
            Reply::Endless(CHUNKED_OK.into())
        }
    }))
    .await;
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let out = fetch_within(
        Duration::from_secs(20),
        &["fetch", "--source", &url, "--dest", d],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("file larger than the 1000 bytes allowed"),
        "{err}"
    );
    // Final, not retried, and nothing left behind (not even the partial file).
    assert!(!err.contains("retrying"), "{err}");
    assert_eq!(tree(dest.path()), Vec::<String>::new());
}

#[tokio::test]
async fn an_endless_body_of_unknown_size_stops_at_max_file_bytes() {
    let url = raw_server(Arc::new(|_: &str| Reply::Endless(CHUNKED_OK.into()))).await;
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    // Pinned by digest only: nobody states the size.
    let pin = format!("m.gguf={}", sha256(b"whatever"));
    let out = fetch_within(
        Duration::from_secs(30),
        &[
            "fetch",
            "--source",
            &url,
            "--dest",
            d,
            "--sha256",
            &pin,
            "--max-file-bytes",
            "4194304",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("file larger than the 4194304 bytes allowed (--max-file-bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn an_absurd_content_length_on_a_resume_is_refused_at_once() {
    // 10 bytes already arrived; the server answers the resume claiming 2^60 more bytes (more
    // than any cap) and then closes: refused from the header, not retried into the void.
    let huge: u64 = 1 << 60;
    let url = raw_server(Arc::new(move |_: &str| {
        Reply::Bytes(
            format!(
                "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 10-{}/{}\r\ncontent-length: {huge}\r\n\r\nabc",
                huge + 9,
                huge + 10
            )
            .into_bytes(),
        )
    }))
    .await;
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(dest.path().join("m.gguf.partial"), [7u8; 10]).unwrap();
    let d = dest.path().to_str().unwrap();
    let pin = format!("m.gguf={}", sha256(b"whatever"));
    let out = fetch_within(
        Duration::from_secs(20),
        &["fetch", "--source", &url, "--dest", d, "--sha256", &pin],
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("retrying"), "{err}");
    assert!(
        err.contains(&format!("Content-Length says {huge} more after 10")),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_is_refused_without_the_flag() {
    let server = FileServer::start().await;
    server.add("m.gguf", pattern(100, 1), Behaviour::Normal);
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let pin = format!("m.gguf={}", sha256(&pattern(100, 1)));
    let args = [
        "fetch",
        "--source",
        &server.url,
        "--dest",
        d,
        "--sha256",
        &pin,
    ];
    let out = run_cli(&args, &[("DSR_ALLOW_INSECURE_HTTP", "false")]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pass --allow-insecure-http"),
        "{}",
        stderr(&out)
    );
    assert!(
        server.seen("m.gguf").is_empty(),
        "nothing may be requested over plain http"
    );

    let mut with_flag = args.to_vec();
    with_flag.push("--allow-insecure-http");
    let out = run_cli(&with_flag, &[("DSR_ALLOW_INSECURE_HTTP", "false")]).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn credentials_and_query_strings_never_reach_the_logs() {
    let server = FileServer::start().await;
    let a = pattern(5000, 4);
    server.add("m/model.gguf", a.clone(), Behaviour::Normal);
    let host = server.url.trim_start_matches("http://");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let source = format!("http://alice:hunter2@{host}/m?X-Amz-Signature=sekritsig&token=sekrittok");
    let pin = format!("model.gguf={}", sha256(&a));
    let out = run_cli(
        &["fetch", "--source", &source, "--dest", d, "--sha256", &pin],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        logs.contains("X-Amz-Signature=REDACTED"),
        "the log names the source: {logs}"
    );
    for secret in ["hunter2", "sekritsig", "sekrittok"] {
        assert!(!logs.contains(secret), "{secret} leaked: {logs}");
    }
    // The credentials were still used: basic auth from the URL's user info.
    let seen = server.seen("m/model.gguf");
    assert!(seen[0]
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic ")));

    // And on failure: a file the server does not have, in every retry's log line and the error.
    let pin = format!("missing.gguf={}", sha256(&a));
    let out = run_cli(
        &["fetch", "--source", &source, "--dest", d, "--sha256", &pin],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    let logs = format!("{}{}", stdout(&out), stderr(&out));
    assert!(logs.contains("HTTP 404"), "{logs}");
    for secret in ["hunter2", "sekritsig", "sekrittok"] {
        assert!(!logs.contains(secret), "{secret} leaked: {logs}");
    }
}

#[tokio::test]
async fn a_source_url_that_names_the_file_is_that_file() {
    let server = FileServer::start().await;
    let a = pattern(3000, 5);
    server.add("dir/m.gguf", a.clone(), Behaviour::Normal);
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let source = format!("{}/dir/m.gguf", server.url);
    let pin = format!("m.gguf={}", sha256(&a));
    let out = run_cli(
        &["fetch", "--source", &source, "--dest", d, "--sha256", &pin],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.path().join("m.gguf")).unwrap(), a);
    assert!(server.seen("dir/m.gguf/m.gguf").is_empty());
}

/// SigV4 signs the Host header as it is sent: an endpoint written with upper-case letters and
/// an explicit port (`http://LOCALHOST:PORT`) is sent as `localhost:PORT`; signing the text as
/// written failed moto's signature check (SignatureDoesNotMatch).
#[tokio::test]
async fn sigv4_signs_the_host_and_port_as_sent() {
    let moto = Moto::start_with_auth();
    let s3 = moto.client();
    s3.create_bucket("models").await.unwrap();
    let a = pattern(20_000, 6);
    s3.put_bytes("models", "v1/m.gguf", a.clone())
        .await
        .unwrap();
    let port = moto.endpoint.rsplit(':').next().unwrap();
    let endpoint = format!("http://LOCALHOST:{port}");
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path().to_str().unwrap();
    let out = run_cli(
        &[
            "fetch",
            "--source",
            "s3://models/v1",
            "--dest",
            d,
            "--s3-endpoint",
            &endpoint,
        ],
        &as_refs(&env),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.path().join("m.gguf")).unwrap(), a);
}
