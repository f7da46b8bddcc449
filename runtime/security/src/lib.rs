//! deepseek-security: who may call, over what connection, how often. Is: authentication (JWT
//! HS256/RS256/ES256, JWKS, static API keys) with roles mapped to routes, TLS (rustls, 1.2+,
//! certificates reloaded on change), rate limits (token buckets in memory or on Redis), and the
//! flags that configure them, as axum layers and a listener shared by `deepseek-server` and
//! `deepseek-router`. Is NOT: routes or handlers, and nothing about request contents (privacy
//! redaction lives in its own crate).
//!
//! Order of the layers on a request: auth (401/403), then the rate limit (429, keyed by the
//! principal auth found), then the handler. Health and readiness are always open; `/metrics` and
//! admin pages need the `admin` role on the public port, or are served on the separate admin
//! port (`--admin-port`) that only the cluster's monitoring and operator reach.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod tls;
pub mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use auth::{Authenticator, Principal};
pub use error::SecurityError;
pub use metrics::SecurityMetrics;
pub use ratelimit::{RateLimitArgs, RateLimiter};
pub use routes::Role;

/// The security flags of `serve` and `route` (each with its `DSR_*` environment twin).
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// API keys, one per line: the key or `sha256:HEX`, then optionally a space and its roles
    /// (`chat,admin`; `chat` when omitted). Re-read when it changes.
    #[arg(long, env = "DSR_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// HS256 secret of accepted JWTs. Re-read when it changes.
    #[arg(long, env = "DSR_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key (RSA for RS256, P-256 for ES256) of accepted JWTs.
    #[arg(long, env = "DSR_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// JWKS file (RSA and P-256 keys, chosen by the token's `kid`). Re-read when it changes.
    #[arg(long, env = "DSR_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` of JWTs; not checked when unset.
    #[arg(long, env = "DSR_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of JWTs; not checked when unset.
    #[arg(long, env = "DSR_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// JWT claim holding the roles (`chat`, `admin`): an array or a space-separated string; a
    /// dotted path reaches into objects (`realm_access.roles`).
    #[arg(long, env = "DSR_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,
    /// TLS certificate chain (PEM); with --tls-key, serve HTTPS (TLS 1.2 and 1.3 only).
    /// Re-read when it changes.
    #[arg(long, env = "DSR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) matching --tls-cert.
    #[arg(long, env = "DSR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve `/metrics` and admin pages (plain HTTP, no auth) on this port instead of the
    /// public one; keep it off the chat Service (the operator does).
    #[arg(long, env = "DSR_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    #[command(flatten)]
    pub rate_limit: RateLimitArgs,
}

impl Default for SecurityArgs {
    fn default() -> Self {
        Self {
            api_keys_file: None,
            jwt_secret_file: None,
            jwt_public_key_file: None,
            jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_roles_claim: "roles".into(),
            tls_cert: None,
            tls_key: None,
            admin_port: None,
            rate_limit: RateLimitArgs::default(),
        }
    }
}

/// Everything the flags configure, ready to wrap a router and serve it.
pub struct Security {
    pub auth: Option<Arc<Authenticator>>,
    pub limiter: Option<Arc<RateLimiter>>,
    pub tls: Option<TlsAcceptor>,
    pub metrics: Arc<SecurityMetrics>,
    pub admin_port: Option<u16>,
}

impl Security {
    /// Loads keys and certificates (failing on bad files) and starts their watchers; must run
    /// inside a tokio runtime.
    pub fn from_args(args: &SecurityArgs) -> anyhow::Result<Self> {
        let metrics = Arc::new(SecurityMetrics::new().context("security metrics")?);
        let jwt = auth::jwt::JwtConfig {
            secret_file: args.jwt_secret_file.clone(),
            public_key_file: args.jwt_public_key_file.clone(),
            jwks_file: args.jwks_file.clone(),
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            roles_claim: args.jwt_roles_claim.clone(),
        };
        let auth =
            Authenticator::new(args.api_keys_file.clone(), jwt, metrics.clone())?.map(Arc::new);
        let limiter = RateLimiter::new(&args.rate_limit, metrics.clone())?.map(Arc::new);
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                Some(tls::acceptor(cert.clone(), key.clone(), metrics.clone())?)
            }
            _ => None,
        };
        if auth.is_none() {
            tracing::warn!("no --api-keys-file or --jwt-*: every caller is let in");
        }
        Ok(Self {
            auth,
            limiter,
            tls,
            metrics,
            admin_port: args.admin_port,
        })
    }

    /// Wraps `app` in the rate limit, then auth (outermost, so the limit sees the principal).
    pub fn protect(&self, mut app: Router) -> Router {
        if let Some(l) = &self.limiter {
            app = app.layer(axum::middleware::from_fn_with_state(
                l.clone(),
                ratelimit::limit_requests,
            ));
        }
        if let Some(a) = &self.auth {
            app = app.layer(axum::middleware::from_fn_with_state(
                a.clone(),
                auth::require_role,
            ));
        }
        app
    }

    /// Serves `app` on `listener` within the connection limits (`deepseek_http::serve`), over
    /// TLS when configured: the handshake runs in each connection's task, inside the
    /// connection cap and the header-read limit.
    pub async fn serve(
        &self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
        limits: deepseek_http::ConnLimits,
        drain: deepseek_http::Drain,
        conn_metrics: deepseek_http::ConnMetrics,
    ) -> std::io::Result<()> {
        let handshake = self.tls.clone().map(tls::handshake);
        deepseek_http::serve_with_handshake(
            listener,
            handshake,
            app,
            shutdown,
            limits,
            drain,
            conn_metrics,
        )
        .await
    }
}
