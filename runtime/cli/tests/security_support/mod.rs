//! Shared pieces of the security tests: real key material made with `openssl` in a temp dir
//! (HS256 secret, RSA and P-256 key pairs, a JWKS, an API keys file, a self-signed TLS
//! certificate), tokens signed with it, and servers behind the security layers.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::pending;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use deepseek_security::{Security, SecurityArgs};
use deepseek_server::AppState;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://login.example.test";
pub const AUDIENCE: &str = "deepseek-chat";
pub const HS_SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
pub const CHAT_KEY: &str = "sk-chat-key-1";
pub const ADMIN_KEY: &str = "sk-admin-key-1";
pub const EC_KID: &str = "ec-1";

/// Key material in a temp dir; the dir lives as long as this value.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub secret_file: PathBuf,
    pub rsa_private: Vec<u8>,
    pub rsa_public_file: PathBuf,
    pub ec_private: Vec<u8>,
    pub jwks_file: PathBuf,
    pub api_keys_file: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Keys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let secret_file = p("jwt-secret");
        // A trailing newline, as `echo` or `kubectl create secret --from-file` leave it.
        std::fs::write(&secret_file, format!("{HS_SECRET}\n")).unwrap();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &s(&p("rsa.key")),
        ]);
        openssl(&[
            "pkey",
            "-in",
            &s(&p("rsa.key")),
            "-pubout",
            "-out",
            &s(&p("rsa.pub")),
        ]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &s(&p("ec.key")),
        ]);
        openssl(&[
            "pkey",
            "-in",
            &s(&p("ec.key")),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &s(&p("ec.pub.der")),
        ]);
        // A P-256 SubjectPublicKeyInfo ends with the uncompressed point 04 || x || y.
        let der = std::fs::read(p("ec.pub.der")).unwrap();
        let point = &der[der.len() - 65..];
        assert_eq!(point[0], 4);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": EC_KID, "use": "sig",
            "alg": "ES256", "x": b64url(&point[1..33]), "y": b64url(&point[33..])}]});
        let jwks_file = p("jwks.json");
        std::fs::write(&jwks_file, jwks.to_string()).unwrap();
        let api_keys_file = p("api-keys");
        let admin_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(ADMIN_KEY));
        std::fs::write(
            &api_keys_file,
            format!("# chat clients\n{CHAT_KEY}\nsha256:{admin_hash} admin\n"),
        )
        .unwrap();
        Self {
            rsa_private: std::fs::read(p("rsa.key")).unwrap(),
            rsa_public_file: p("rsa.pub"),
            ec_private: std::fs::read(p("ec.key")).unwrap(),
            secret_file,
            jwks_file,
            api_keys_file,
            dir,
        }
    }

    /// Every credential source at once, with issuer and audience checks.
    pub fn args(&self) -> SecurityArgs {
        SecurityArgs {
            api_keys_file: Some(self.api_keys_file.clone()),
            jwt_secret_file: Some(self.secret_file.clone()),
            jwt_public_key_file: Some(self.rsa_public_file.clone()),
            jwks_file: Some(self.jwks_file.clone()),
            jwt_issuer: Some(ISSUER.into()),
            jwt_audience: Some(AUDIENCE.into()),
            ..SecurityArgs::default()
        }
    }

    /// The same settings as command-line flags (for the binary).
    pub fn flags(&self) -> Vec<String> {
        let s = |p: &Path| p.to_str().unwrap().to_string();
        vec![
            "--api-keys-file".into(),
            s(&self.api_keys_file),
            "--jwt-secret-file".into(),
            s(&self.secret_file),
            "--jwt-public-key-file".into(),
            s(&self.rsa_public_file),
            "--jwks-file".into(),
            s(&self.jwks_file),
            "--jwt-issuer".into(),
            ISSUER.into(),
            "--jwt-audience".into(),
            AUDIENCE.into(),
        ]
    }

    pub fn hs256(&self, claims: &Value) -> String {
        sign(
            Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        )
    }

    pub fn rs256(&self, claims: &Value) -> String {
        sign(
            Header::new(Algorithm::RS256),
            claims,
            &EncodingKey::from_rsa_pem(&self.rsa_private).unwrap(),
        )
    }

    pub fn es256(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        sign(
            h,
            claims,
            &EncodingKey::from_ec_pem(&self.ec_private).unwrap(),
        )
    }

    /// The HS/RS confusion attack: HS256 "signed" with the RSA public key's PEM as the secret.
    pub fn hs256_with_rsa_public_key(&self, claims: &Value) -> String {
        let public = std::fs::read(&self.rsa_public_file).unwrap();
        sign(
            Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&public),
        )
    }
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims valid for an hour, with these roles.
pub fn claims(roles: &[&str]) -> Value {
    json!({"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600,
           "roles": roles})
}

/// An unsigned token (`alg: none`) with these claims.
pub fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    )
}

/// A validly signed token whose payload was swapped afterwards (signature kept).
pub fn tampered(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// Serves `state`'s full route table behind the security layers configured by `args`, the
/// way `serve` does; returns the base URL (http or https).
pub async fn secure_server(state: Arc<AppState>, args: &SecurityArgs) -> String {
    let security = Security::from_args(args).unwrap();
    security.metrics.register(state.metrics.registry()).unwrap();
    let app = security.protect(deepseek_server::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if security.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tokio::spawn(async move {
        security
            .serve(
                listener,
                app,
                pending(),
                deepseek_http::ConnLimits {
                    drain: Duration::from_secs(1),
                    ..Default::default()
                },
                deepseek_http::Drain::new(),
                deepseek_http::ConnMetrics::detached(),
            )
            .await
    });
    format!("{scheme}://{addr}")
}
