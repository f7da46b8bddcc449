//! Auth end to end: the JWT attack table and the role-to-route matrix, against the API server
//! directly (in process, real HTTP on 127.0.0.1, the same layers `serve` installs) and through
//! the router binary; key files reloaded without a restart; the admin port; the official OpenAI
//! Python client with an API key and with a JWT against the real model.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/real.rs"]
mod real;
mod router_support;
mod security_support;

use std::process::Stdio;
use std::time::Duration;

use common::{fake_state, FakeServerConfig, FAKE_MODEL_NAME};
use deepseek_security::SecurityArgs;
use security_support::*;
use serde_json::{json, Value};

/// One row of the table: a credential, the path it tries, and the status it must get.
struct Case {
    name: &'static str,
    bearer: Option<String>,
    path: &'static str,
    want: u16,
}

/// The attack table and the role matrix for a server whose chat path is `chat` and whose
/// admin path is `admin`. Every row names its expected outcome.
fn table(keys: &Keys, chat: &'static str, admin: &'static str) -> Vec<Case> {
    let c = |roles: &[&str]| claims(roles);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = claims(&["chat"]);
        f(&mut v);
        v
    };
    let valid_chat = keys.hs256(&c(&["chat"]));
    let case = |name, bearer: Option<String>, path, want| Case {
        name,
        bearer,
        path,
        want,
    };
    vec![
        case("no credentials", None, chat, 401),
        case("unknown API key", Some("sk-unknown".into()), chat, 401),
        case(
            "alg none",
            Some(alg_none(&c(&["chat", "admin"]))),
            chat,
            401,
        ),
        case(
            "HS/RS confusion (HS256 keyed with the RSA public key)",
            Some(keys.hs256_with_rsa_public_key(&c(&["chat", "admin"]))),
            chat,
            401,
        ),
        case(
            "expired",
            Some(keys.hs256(&with(&|v| v["exp"] = json!(now() - 120)))),
            chat,
            401,
        ),
        case(
            "not yet valid",
            Some(keys.hs256(&with(&|v| v["nbf"] = json!(now() + 120)))),
            chat,
            401,
        ),
        case(
            "no exp",
            Some(keys.hs256(&with(&|v| {
                v.as_object_mut().unwrap().remove("exp");
            }))),
            chat,
            401,
        ),
        case(
            "wrong issuer",
            Some(keys.hs256(&with(&|v| v["iss"] = json!("https://evil.test")))),
            chat,
            401,
        ),
        case(
            "wrong audience",
            Some(keys.hs256(&with(&|v| v["aud"] = json!("other-service")))),
            chat,
            401,
        ),
        case(
            "tampered payload (roles raised to admin)",
            Some(tampered(&valid_chat, &c(&["chat", "admin"]))),
            admin,
            401,
        ),
        case(
            "unknown key id",
            Some(keys.es256("no-such-kid", &c(&["chat"]))),
            chat,
            401,
        ),
        case(
            "missing roles claim",
            Some(keys.hs256(&with(&|v| {
                v.as_object_mut().unwrap().remove("roles");
            }))),
            chat,
            403,
        ),
        case("HS256 chat -> chat", Some(valid_chat.clone()), chat, 200),
        case("HS256 chat -> admin", Some(valid_chat), admin, 403),
        case(
            "RS256 admin -> admin",
            Some(keys.rs256(&c(&["admin"]))),
            admin,
            200,
        ),
        case(
            "RS256 admin -> chat",
            Some(keys.rs256(&c(&["admin"]))),
            chat,
            403,
        ),
        case(
            "ES256 (JWKS kid) chat -> chat",
            Some(keys.es256(EC_KID, &c(&["chat"]))),
            chat,
            200,
        ),
        case(
            "ES256 (JWKS kid) chat -> admin",
            Some(keys.es256(EC_KID, &c(&["chat"]))),
            admin,
            403,
        ),
        case("API key chat -> chat", Some(CHAT_KEY.into()), chat, 200),
        case("API key chat -> admin", Some(CHAT_KEY.into()), admin, 403),
        case(
            "API key admin (sha256) -> admin",
            Some(ADMIN_KEY.into()),
            admin,
            200,
        ),
        case("no credentials -> /healthz", None, "/healthz", 200),
        case("no credentials -> /readyz", None, "/readyz", 200),
    ]
}

async fn send(http: &reqwest::Client, base: &str, case: &Case) -> (u16, Value) {
    let url = format!("{base}{}", case.path);
    let mut req = if case.path == "/v1/chat/completions" {
        http.post(url).json(&json!({"model": FAKE_MODEL_NAME,
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}))
    } else {
        http.get(url)
    };
    if let Some(b) = &case.bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Runs every row, prints the table, and fails listing every row that did not hold.
async fn run_table(base: &str, cases: &[Case], label: &str) {
    let http = reqwest::Client::new();
    let mut wrong = Vec::new();
    println!("\n{label}:");
    for case in cases {
        let (status, body) = send(&http, base, case).await;
        println!("  {:<55} {:<22} -> {status}", case.name, case.path);
        if status != case.want {
            wrong.push(format!(
                "{}: got {status}, want {} ({body})",
                case.name, case.want
            ));
        }
        if status == 401 || status == 403 {
            // OpenAI's error shape, and no hint of why a token failed.
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let want_code = if status == 401 {
                "invalid_api_key"
            } else {
                "insufficient_permissions"
            };
            if code != want_code || body["error"]["message"].as_str().is_none() {
                wrong.push(format!("{}: error body {body}", case.name));
            }
        }
    }
    assert!(wrong.is_empty(), "{label}:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_attack_table_holds_against_the_api_server_directly() {
    let keys = Keys::new();
    let state = fake_state(FakeServerConfig::default()).await;
    let base = secure_server(state, &keys.args()).await;
    run_table(
        &base,
        &table(&keys, "/v1/chat/completions", "/metrics"),
        "server",
    )
    .await;
    // /v1/models and the WebSocket path need chat too.
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = http.get(format!("{base}/ws/chat")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn hs256_tokens_are_refused_where_only_an_rsa_public_key_is_configured() {
    let keys = Keys::new();
    let args = SecurityArgs {
        jwt_public_key_file: Some(keys.rsa_public_file.clone()),
        ..SecurityArgs::default()
    };
    let base = secure_server(fake_state(FakeServerConfig::default()).await, &args).await;
    let http = reqwest::Client::new();
    let get = |token: String| {
        http.get(format!("{base}/v1/models"))
            .bearer_auth(token)
            .send()
    };
    let all = claims(&["chat", "admin"]);
    assert_eq!(
        get(keys.hs256_with_rsa_public_key(&all))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(get(keys.hs256(&all)).await.unwrap().status(), 401);
    assert_eq!(get(alg_none(&all)).await.unwrap().status(), 401);
    assert_eq!(get(keys.rs256(&all)).await.unwrap().status(), 200);
}

/// The router binary with the same flags in front of a backend: chat is forwarded, admin
/// stats need admin, and the rows of the attack table hold at the cluster's entry point.
#[tokio::test]
async fn the_attack_table_holds_through_the_router() {
    let keys = Keys::new();
    let b = router_support::backend("stable").await;
    let yaml = router_support::routes_yaml("", &[("stable", 100, vec![b.url.clone()])]);
    let router = start_router(&yaml, &keys.flags()).await;
    run_table(
        &router.url,
        &table(&keys, "/v1/chat/completions", "/admin/stats"),
        "router",
    )
    .await;
    // What the backend got is what the table let through: one hit per 200 on the chat path.
    assert_eq!(b.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
}

pub struct Router {
    pub url: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn start_router(yaml: &str, flags: &[String]) -> Router {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("routes.yaml");
    std::fs::write(&config, yaml).unwrap();
    let addr = deepseek_test_support::free_addr();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args(["route", "--listen", &addr.to_string()])
        .args(flags)
        .env("DSR_ROUTE_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{addr}");
    deepseek_test_support::wait_for_http(&format!("{url}/healthz"), Duration::from_secs(20)).await;
    Router {
        url,
        _child: child,
        _dir: dir,
    }
}

#[tokio::test]
async fn api_keys_and_jwks_are_reloaded_when_their_files_change() {
    let keys = Keys::new();
    let base = secure_server(fake_state(FakeServerConfig::default()).await, &keys.args()).await;
    let http = reqwest::Client::new();
    let status = |key: String| {
        let req = http.get(format!("{base}/v1/models")).bearer_auth(key);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(CHAT_KEY.into()).await, 200);
    assert_eq!(status("sk-rotated".into()).await, 401);
    // Replace the file the way a Secret update does: write aside, then rename over it.
    let tmp = keys.api_keys_file.with_extension("tmp");
    std::fs::write(&tmp, "sk-rotated chat\n").unwrap();
    std::fs::rename(&tmp, &keys.api_keys_file).unwrap();
    let swapped = deepseek_test_support::eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            (status("sk-rotated".into()).await == 200 && status(CHAT_KEY.into()).await == 401)
                .then_some(())
        },
    )
    .await;
    assert!(swapped.is_some(), "the new key file was not picked up");
    // A JWKS emptied of its key: tokens naming that kid stop verifying.
    let token = keys.es256(EC_KID, &claims(&["chat"]));
    assert_eq!(status(token.clone()).await, 200);
    std::fs::write(&keys.jwks_file, r#"{"keys": []}"#).unwrap();
    // An empty JWKS is still a valid file, but the other key sources remain, so it loads.
    let dropped = deepseek_test_support::eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { (status(token.clone()).await == 401).then_some(()) },
    )
    .await;
    assert!(dropped.is_some(), "the changed JWKS was not picked up");
}

/// With `--admin-port`, the router's public port has no stats or metrics (even for an admin
/// credential), and the admin port serves them without credentials (only the cluster reaches
/// it: the chat Service does not expose it, and a NetworkPolicy admits only monitoring).
#[tokio::test]
async fn the_admin_port_takes_metrics_and_stats_off_the_public_port() {
    let keys = Keys::new();
    let b = router_support::backend("stable").await;
    let yaml = router_support::routes_yaml("", &[("stable", 100, vec![b.url.clone()])]);
    let admin_port = deepseek_test_support::free_port();
    let mut flags = keys.flags();
    flags.extend(["--admin-port".into(), admin_port.to_string()]);
    let router = start_router(&yaml, &flags).await;
    let http = reqwest::Client::new();
    for path in ["/admin/stats", "/metrics"] {
        let public = http
            .get(format!("{}{path}", router.url))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        // Not served by the router there: forwarded, and the backend has no such page.
        assert_eq!(public.status(), 404, "{path} on the public port");
        let admin = http
            .get(format!("http://127.0.0.1:{admin_port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), 200, "{path} on the admin port");
    }
    let page = http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("dsr_auth_requests_total{outcome=\"ok\"} 2"),
        "{page}"
    );
}

async fn run_openai_client(base: &str, credential: &str) {
    let python = deepseek_test_support::venv_bin("python");
    assert!(
        python.exists(),
        "{} is missing: run `make test-deps`",
        python.display()
    );
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_auth_client.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("DSR_BASE_URL", base)
        .env("DSR_MODEL_NAME", real::REAL_MODEL_NAME)
        .env("DSR_API_KEY", credential)
        .output()
        .await
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("openai auth client: ok"), "{log}");
}

#[tokio::test]
async fn the_official_openai_client_works_with_an_api_key_and_with_a_jwt() {
    let keys = Keys::new();
    let state = tokio::task::spawn_blocking(|| {
        deepseek_server::serve::build_state(&real::real_args()).unwrap()
    })
    .await
    .unwrap();
    let base = secure_server(state, &keys.args()).await;
    real::wait_ready(&base).await;
    run_openai_client(&base, CHAT_KEY).await;
    run_openai_client(&base, &keys.rs256(&claims(&["chat"]))).await;
}
