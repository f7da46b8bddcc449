//! Who is calling, and may they use this path: a Bearer credential (a JWT, or a static API
//! key) becomes a [`Principal`] with roles, checked against [`crate::routes::required_role`].
//! Missing or unverifiable credentials are 401, a verified credential without the role 403.

pub mod api_keys;
pub mod jwt;

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::SecurityError;
use crate::metrics::SecurityMetrics;
use crate::routes::{required_role, Role};
use crate::watch::Reloading;
use api_keys::ApiKeys;
use jwt::{JwtConfig, JwtVerifier};

/// A verified caller, put in the request's extensions for the layers after auth (rate limits).
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `sub:<subject>` for a JWT, `key:<hash prefix>` for an API key.
    pub id: String,
    pub roles: HashSet<Role>,
}

/// The configured credential sources, each reloaded when its files change.
pub struct Authenticator {
    api_keys: Option<Arc<Reloading<ApiKeys>>>,
    jwt: Option<Arc<Reloading<JwtVerifier>>>,
    metrics: Arc<SecurityMetrics>,
}

impl Authenticator {
    /// `None` when no credential source is configured (auth off). Must run inside a tokio
    /// runtime (the file watchers are tasks).
    pub fn new(
        api_keys_file: Option<std::path::PathBuf>,
        jwt: JwtConfig,
        metrics: Arc<SecurityMetrics>,
    ) -> anyhow::Result<Option<Self>> {
        let api_keys = match api_keys_file {
            Some(path) => Some(Reloading::watch(
                "api keys",
                vec![path.clone()],
                move || ApiKeys::load(&path),
            )?),
            None => None,
        };
        let jwt = if jwt.enabled() {
            let files = jwt.files().collect();
            Some(Reloading::watch("jwt keys", files, move || {
                JwtVerifier::load(&jwt)
            })?)
        } else {
            None
        };
        if api_keys.is_none() && jwt.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            api_keys,
            jwt,
            metrics,
        }))
    }

    /// The principal behind the request's `Authorization: Bearer` credential.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, String> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or("no Authorization header")?
            .to_str()
            .map_err(|_| "Authorization is not text")?;
        let (scheme, credential) = value.split_once(' ').ok_or("Authorization has no scheme")?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!("scheme {scheme} is not Bearer"));
        }
        let credential = credential.trim();
        if let Some(keys) = &self.api_keys {
            if let Some(p) = keys.current().lookup(credential) {
                return Ok(p);
            }
        }
        match &self.jwt {
            Some(jwt) if looks_like_jwt(credential) => jwt.current().verify(credential),
            _ => Err("unknown API key".into()),
        }
    }
}

/// Three base64url segments: the shape of a JWS compact serialization.
fn looks_like_jwt(s: &str) -> bool {
    s.split('.').count() == 3
}

/// The axum middleware: open paths pass, others need a principal with the path's role.
pub async fn require_role(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(role) = required_role(req.uri().path()) else {
        return next.run(req).await;
    };
    match auth.authenticate(req.headers()) {
        Ok(p) if p.roles.contains(&role) => {
            auth.metrics.auth_outcome("ok");
            // The handlers' view of the caller (the data subject of stored conversations, the
            // admin of the privacy endpoints): a JWT's `sub`, or the API key's id.
            req.extensions_mut().insert(deepseek_http::Principal {
                subject: p.id.strip_prefix("sub:").unwrap_or(&p.id).to_string(),
                roles: p.roles.iter().map(|r| r.as_str().to_string()).collect(),
            });
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Ok(p) => {
            auth.metrics.auth_outcome("forbidden");
            tracing::info!(principal = %p.id, path = req.uri().path(), needs = role.as_str(), "forbidden");
            SecurityError::Forbidden {
                path: req.uri().path().to_string(),
                role: role.as_str(),
            }
            .into_response()
        }
        Err(reason) => {
            auth.metrics.auth_outcome("unauthenticated");
            tracing::info!(path = req.uri().path(), %reason, "unauthenticated");
            SecurityError::Unauthenticated { reason }.into_response()
        }
    }
}
