//! TLS end to end with real handshakes on 127.0.0.1: TLS 1.2 and 1.3 accepted, a TLS 1.1
//! ClientHello refused with a protocol_version alert, and a certificate rotation that keeps an
//! open stream going while new connections get the new certificate; the router binary with
//! the same flags.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
mod security_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{fake_state, FakeServerConfig, FAKE_MODEL_NAME};
use deepseek_security::SecurityArgs;
use futures::StreamExt;
use security_support::secure_server;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate for 127.0.0.1/localhost: (cert file, key file, DER).
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // An end-entity certificate (openssl marks self-signed ones as CAs by default, which
        // webpki refuses to see at the end of a chain); the client trusts it directly.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&cert).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    (cert, key, der)
}

fn client(roots: &[&Path], version: reqwest::tls::Version) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .min_tls_version(version)
        .max_tls_version(version)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60));
    for r in roots {
        b = b.add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(r).unwrap()).unwrap(),
        );
    }
    b.build().unwrap()
}

fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

/// A minimal ClientHello offering only `version` (no supported_versions extension, so the
/// legacy field is the whole offer) and the AEAD suites rustls implements.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut ext = Vec::new();
    // supported_groups: secp256r1, x25519
    ext.extend([0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x17, 0x00, 0x1d]);
    // ec_point_formats: uncompressed
    ext.extend([0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend([
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    let mut body = Vec::new();
    body.extend(version);
    body.extend([7u8; 32]); // random
    body.push(0); // session id
                  // ECDHE_ECDSA_AES_128_GCM_SHA256, ECDHE_RSA_AES_128_GCM_SHA256, ECDHE_ECDSA_AES_128_CBC_SHA
    body.extend([0x00, 0x06, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x09]);
    body.extend([0x01, 0x00]); // compression: null
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![0x01];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

/// The first record the server answers a ClientHello with: (content type, first 2 body bytes).
async fn first_record(addr: &str, hello: &[u8]) -> (u8, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut head = [0u8; 5];
    tcp.read_exact(&mut head).await.unwrap();
    let mut body = vec![0u8; 2];
    tcp.read_exact(&mut body).await.unwrap();
    (head[0], body)
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_served_and_tls_1_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = make_cert(dir.path(), "first");
    let args = SecurityArgs {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..SecurityArgs::default()
    };
    let base = secure_server(fake_state(FakeServerConfig::default()).await, &args).await;
    assert!(base.starts_with("https://"));
    for v in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let resp = client(&[&cert], v)
            .get(format!("{base}/v1/models"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{v:?}");
        assert_eq!(peer_cert(&resp), der);
    }
    let addr = base.trim_start_matches("https://");
    // The same hello, differing only in the version offered: 1.2 gets a ServerHello
    // (handshake record), 1.1 a fatal protocol_version alert (level 2, description 70).
    assert_eq!(
        first_record(addr, &client_hello([3, 3])).await,
        (0x16, vec![0x02, 0x00])
    );
    assert_eq!(
        first_record(addr, &client_hello([3, 2])).await,
        (0x15, vec![2, 70])
    );
    assert_eq!(
        first_record(addr, &client_hello([3, 1])).await,
        (0x15, vec![2, 70])
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(reqwest::get(format!("http://{addr}/healthz"))
        .await
        .is_err());
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_and_an_open_stream_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = make_cert(dir.path(), "first");
    let (cert_b, key_b, der_b) = make_cert(dir.path(), "second");
    let live_cert = dir.path().join("tls.crt");
    let live_key = dir.path().join("tls.key");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    std::fs::copy(&key_a, &live_key).unwrap();
    let args = SecurityArgs {
        tls_cert: Some(live_cert.clone()),
        tls_key: Some(live_key.clone()),
        ..SecurityArgs::default()
    };
    let cfg = FakeServerConfig {
        step_delay: Duration::from_millis(40),
        ..FakeServerConfig::default()
    };
    let base = secure_server(fake_state(cfg).await, &args).await;
    let http = client(&[&cert_a, &cert_b], reqwest::tls::Version::TLS_1_3);

    let stream = http
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &json!({"model": FAKE_MODEL_NAME, "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 60, "temperature": 0, "stream": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(peer_cert(&stream), der_a);
    let mut body = stream.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data:"));

    // Rotate the way a Secret update lands: new files renamed over the old ones.
    for (src, dst) in [(&cert_b, &live_cert), (&key_b, &live_key)] {
        let tmp = dst.with_extension("tmp");
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dst).unwrap();
    }
    let rotated = deepseek_test_support::eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            // A fresh client: a resumed session would report the certificate of the first.
            let fresh = client(&[&cert_a, &cert_b], reqwest::tls::Version::TLS_1_3);
            let r = fresh.get(format!("{base}/healthz")).send().await.ok()?;
            (peer_cert(&r) == der_b).then_some(())
        },
    )
    .await;
    assert!(
        rotated.is_some(),
        "new connections never saw the new certificate"
    );

    // The stream opened before the rotation runs to its end on the old session.
    let mut text = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let chunks = text.matches("\"delta\"").count();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(chunks >= 60, "only {chunks} chunks arrived");
}

#[tokio::test]
async fn the_router_serves_https_with_the_same_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = make_cert(dir.path(), "router");
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        "revisions:\n  - name: a\n    weight: 100\n    backends: [\"http://127.0.0.1:9\"]\n",
    )
    .unwrap();
    let addr = deepseek_test_support::free_addr();
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args(["route", "--listen", &addr.to_string()])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("DSR_ROUTE_CONFIG", &routes)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = client(&[&cert], reqwest::tls::Version::TLS_1_2);
    let url = format!("https://localhost:{}/healthz", addr.port());
    let resp = deepseek_test_support::eventually(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async { http.get(&url).send().await.ok() },
    )
    .await
    .expect("the router never answered over TLS");
    assert_eq!(resp.status(), 200);
    assert_eq!(peer_cert(&resp), der);
}
