//! The operator and the runtime can never disagree on flags again: every example in
//! `examples/` is rendered by the operator, and each runtime and router container it renders
//! is started from the real binary with exactly the rendered arguments and environment (its
//! ConfigMap's `envFrom` and its Secrets' values included). The only rewrites are the pod's
//! mount paths (to local directories holding what the volumes would: the model, generated
//! keys and certificates, the routes file) and its ports (to free local ones). Each started
//! process must then serve: readiness on its admin port, the auth the spec asked for on its
//! public port, TLS where the spec has it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod security_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use deepseek_operator::desired::BuildConfig;
use deepseek_test_support::{free_port, model_path, workspace_root, ChildGuard};
use security_support::{claims, Keys, CHAT_KEY};
use serde_json::Value;

fn rendered(example: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(example).unwrap();
    let yaml = deepseek_operator::render::render(&text, &BuildConfig::default()).unwrap();
    serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn config_map<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no rendered ConfigMap {name}"))
}

/// A pod's container made runnable here: its mounts as local directories.
struct LocalPod {
    /// Holds the mounted directories; removed with the pod.
    _dir: tempfile::TempDir,
    /// mountPath -> local directory.
    mounts: BTreeMap<String, PathBuf>,
}

/// Fills each volume the container mounts the way Kubernetes would, from what the test made.
fn local_pod(
    docs: &[Value],
    pod: &Value,
    container: &Value,
    keys: &Keys,
    tls: &(PathBuf, PathBuf),
) -> LocalPod {
    let dir = tempfile::tempdir().unwrap();
    let mut mounts = BTreeMap::new();
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    for (i, m) in container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let local = dir.path().join(format!("mount{i}"));
        std::fs::create_dir_all(&local).unwrap();
        let volume = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        if let Some(cm) = volume["configMap"]["name"].as_str() {
            for (k, v) in config_map(docs, cm)["data"].as_object().unwrap() {
                std::fs::write(local.join(k), v.as_str().unwrap()).unwrap();
            }
        }
        if volume["secret"].is_object() {
            // The only Secret volume rendered is the kubernetes.io/tls one.
            std::fs::copy(&tls.0, local.join("tls.crt")).unwrap();
            std::fs::copy(&tls.1, local.join("tls.key")).unwrap();
        }
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for item in source["secret"]["items"].as_array().unwrap() {
                let path = item["path"].as_str().unwrap();
                let from = match path {
                    "jwt-secret" => keys.secret_file.clone(),
                    "jwt-public-key.pem" => keys.rsa_public_file.clone(),
                    "jwks.json" => keys.jwks_file.clone(),
                    "api-keys" => keys.api_keys_file.clone(),
                    other => {
                        panic!("the operator mounts an auth file the test does not know: {other}")
                    }
                };
                std::fs::copy(from, local.join(path)).unwrap();
            }
        }
        mounts.insert(m["mountPath"].as_str().unwrap().to_string(), local);
    }
    LocalPod { _dir: dir, mounts }
}

impl LocalPod {
    /// `arg` with a mount path prefix replaced by its local directory.
    fn path(&self, arg: &str) -> String {
        for (mount, local) in &self.mounts {
            if let Some(rest) = arg.strip_prefix(mount.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    return format!("{}{rest}", local.display());
                }
            }
        }
        arg.to_string()
    }
}

/// Ports the process will listen on, after the rewrite.
#[derive(Default, Debug)]
struct Ports {
    public: u16,
    admin: u16,
}

/// The rendered arguments, with mount paths and ports made local.
fn local_args(pod: &LocalPod, args: &[String], ports: &Ports) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                it.next();
                out.extend(["--port".into(), ports.public.to_string()]);
            }
            "--host" => {
                it.next();
                out.extend(["--host".into(), "127.0.0.1".into()]);
            }
            "--listen" => {
                it.next();
                out.extend(["--listen".into(), format!("127.0.0.1:{}", ports.public)]);
            }
            "--admin-port" => {
                it.next();
                out.extend(["--admin-port".into(), ports.admin.to_string()]);
            }
            _ => out.push(pod.path(a)),
        }
    }
    out
}

/// The container's environment: its ConfigMap's keys, then `env` (values, or the test's
/// stand-ins for Secret references), with the admin port made local.
fn local_env(
    docs: &[Value],
    container: &Value,
    redis_url: &str,
    ports: &Ports,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let cm = from["configMapRef"]["name"].as_str().unwrap();
        for (k, v) in config_map(docs, cm)["data"].as_object().unwrap() {
            env.push((k.clone(), v.as_str().unwrap().to_string()));
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = match (&e["value"], &e["valueFrom"]["secretKeyRef"]) {
            (Value::String(v), _) if name == "DSR_ADMIN_PORT" => {
                assert!(v.parse::<u16>().is_ok());
                ports.admin.to_string()
            }
            (Value::String(v), _) => v.clone(),
            (_, Value::Object(_)) if name == "DSR_RATE_LIMIT_REDIS_URL" => redis_url.to_string(),
            other => panic!("env {name}: the test has no stand-in for {other:?}"),
        };
        env.push((name, value));
    }
    env
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn https_client(cert: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(cert).unwrap()).unwrap(),
        )
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn wait_ready(url: &str, child: &mut std::process::Child, what: &str) {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before it was ready");
        }
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {url} never became ready");
}

/// A self-signed end-entity certificate for localhost.
fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
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
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
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
    (cert, key)
}

fn start_redis(port: u16) -> ChildGuard {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is missing: run `make test-deps`");
    ChildGuard(child)
}

#[tokio::test]
async fn every_rendered_runtime_and_router_starts_with_exactly_its_rendered_flags() {
    let keys = Keys::new();
    let tls = make_cert(keys.dir.path());
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let redis_url = format!("redis://127.0.0.1:{redis_port}/0");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    let mut started = Vec::new();
    for example in &examples {
        let docs = rendered(example);
        let name = example.file_stem().unwrap().to_string_lossy().to_string();
        let has_auth = docs
            .iter()
            .any(|d| d.to_string().contains("/etc/deepseek/auth"));
        for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
            let pod = &d["spec"]["template"]["spec"];
            for c in pod["containers"].as_array().unwrap() {
                let what = format!("{name}/{}", c["name"].as_str().unwrap());
                let local = local_pod(&docs, pod, c, &keys, &tls);
                let ports = Ports {
                    public: free_port(),
                    admin: free_port(),
                };
                let args = local_args(&local, &strings(&c["args"]), &ports);
                if args[0] == "serve" {
                    // The model volume holds what `fetch` would leave there.
                    let model = args[args.iter().position(|a| a == "--model").unwrap() + 1].clone();
                    if model.ends_with(".gguf") {
                        std::os::unix::fs::symlink(model_path(), &model).unwrap();
                    }
                }
                let env = local_env(&docs, c, &redis_url, &ports);
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"));
                cmd.args(&args)
                    .envs(env.iter().cloned())
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                // Only what the pod would have: no stray DSR_* from the test's environment.
                for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("DSR_")) {
                    cmd.env_remove(k);
                }
                let child = cmd.spawn().unwrap();
                if args[0] == "serve" && !args.iter().any(|a| a.ends_with(".gguf")) {
                    // A safetensors model the test does not have: the flags must still parse,
                    // so the process gets past clap (exit code 2) to loading the model.
                    let out = child.wait_with_output().unwrap();
                    let log = String::from_utf8_lossy(&out.stderr);
                    assert_ne!(
                        out.status.code(),
                        Some(2),
                        "{what} refused its flags: {log}"
                    );
                    assert!(log.contains("loading"), "{what}: {log}");
                    started.push(format!("{what}: flags parsed (no safetensors model here)"));
                    continue;
                }
                let mut child = ChildGuard(child);
                let admin = format!("http://127.0.0.1:{}", ports.admin);
                wait_ready(&format!("{admin}/readyz"), &mut child.0, &what).await;
                let metrics = reqwest::get(format!("{admin}/metrics")).await.unwrap();
                assert_eq!(metrics.status(), 200, "{what}: /metrics on the admin port");
                let tls_on = args.iter().any(|a| a == "--tls-cert");
                let (scheme, http) = if tls_on {
                    ("https", https_client(&tls.0))
                } else {
                    ("http", reqwest::Client::new())
                };
                let host = if tls_on { "localhost" } else { "127.0.0.1" };
                let public = format!("{scheme}://{host}:{}", ports.public);
                // Health stays open on the public port; chat needs a credential when auth is on.
                let health = http.get(format!("{public}/healthz")).send().await.unwrap();
                assert_eq!(health.status(), 200, "{what}: /healthz");
                if args[0] == "serve" {
                    let anonymous = http
                        .get(format!("{public}/v1/models"))
                        .send()
                        .await
                        .unwrap();
                    let want = if has_auth { 401 } else { 200 };
                    assert_eq!(
                        anonymous.status(),
                        want,
                        "{what}: /v1/models without a credential"
                    );
                    if has_auth {
                        // A token for exactly the rendered issuer and audience.
                        let flag = |f: &str| {
                            args.iter()
                                .position(|a| a == f)
                                .map(|i| args[i + 1].clone())
                        };
                        let mut c = claims(&["chat"]);
                        c["iss"] = flag("--jwt-issuer").into();
                        c["aud"] = flag("--jwt-audience").into();
                        let mut credentials = Vec::new();
                        if flag("--jwt-public-key-file").is_some() {
                            credentials.push(keys.rs256(&c));
                        }
                        if flag("--jwt-secret-file").is_some() {
                            credentials.push(keys.hs256(&c));
                        }
                        if flag("--api-keys-file").is_some() {
                            credentials.push(CHAT_KEY.to_string());
                        }
                        assert!(
                            !credentials.is_empty(),
                            "{what}: auth without a credential flag"
                        );
                        for credential in credentials {
                            let ok = http
                                .get(format!("{public}/v1/models"))
                                .bearer_auth(&credential)
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(ok.status(), 200, "{what}: a chat credential");
                        }
                    }
                } else {
                    let stats = reqwest::get(format!("{admin}/admin/stats")).await.unwrap();
                    assert_eq!(
                        stats.status(),
                        200,
                        "{what}: /admin/stats on the admin port"
                    );
                    // The entry point refuses anonymous chat before proxying anywhere.
                    if has_auth {
                        let anonymous = http
                            .post(format!("{public}/v1/chat/completions"))
                            .json(&serde_json::json!({"messages": []}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(anonymous.status(), 401, "{what}: anonymous chat");
                    }
                }
                started.push(format!("{what}: ready ({scheme}, auth: {has_auth})"));
                drop(local);
            }
        }
    }
    println!("{}", started.join("\n"));
    assert!(started.len() >= 10, "{started:?}");
}
