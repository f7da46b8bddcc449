//! Bearer JWT verification: HS256 from a shared secret, RS256/ES256 from a PEM public key or a
//! JWKS file. The accepted algorithm always comes from the configured key, never from the
//! token's header, which is what defeats `alg: none` and HS/RS confusion (an HS256 token
//! "signed" with the RSA public key): a header naming any other algorithm is refused before
//! any signature check.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::Principal;
use crate::routes::Role;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// What the JWT flags configure; the files are re-read when they change.
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    pub secret_file: Option<PathBuf>,
    pub public_key_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Claim holding the roles; a dotted path reaches into objects (`realm_access.roles`).
    pub roles_claim: String,
}

impl JwtConfig {
    pub fn enabled(&self) -> bool {
        self.files().next().is_some()
    }

    pub fn files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        [&self.secret_file, &self.public_key_file, &self.jwks_file]
            .into_iter()
            .flatten()
            .cloned()
    }
}

/// One verification key and the single algorithm it is good for.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys of one version of the files, and the claim rules.
pub struct JwtVerifier {
    keys: Vec<Key>,
    config: JwtConfig,
}

impl JwtVerifier {
    pub fn load(config: &JwtConfig) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        if let Some(path) = &config.secret_file {
            let secret = std::fs::read(path)
                .with_context(|| format!("reading the JWT secret {}", path.display()))?;
            // Secrets written with a trailing newline (`echo`, `--from-file`) mean the same.
            let secret = secret.trim_ascii_end();
            if secret.is_empty() {
                bail!("the JWT secret {} is empty", path.display());
            }
            if secret.len() < 32 {
                tracing::warn!(
                    bytes = secret.len(),
                    "the HS256 secret is shorter than 32 bytes: guessable"
                );
            }
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            });
        }
        if let Some(path) = &config.public_key_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading the JWT public key {}", path.display()))?;
            keys.push(pem_key(&pem).with_context(|| format!("loading {}", path.display()))?);
        }
        if let Some(path) = &config.jwks_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the JWKS {}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("parsing the JWKS {}", path.display()))?;
            for jwk in &set.keys {
                match jwk_key(jwk) {
                    Ok(k) => keys.push(k),
                    // One unsupported key (an encryption key, EdDSA) must not void the rest.
                    Err(e) => {
                        tracing::warn!(kid = ?jwk.common.key_id, error = %e, "JWKS key skipped")
                    }
                }
            }
        }
        if keys.is_empty() {
            bail!("no usable JWT verification key");
        }
        Ok(Self {
            keys,
            config: config.clone(),
        })
    }

    /// Verifies `token` and returns who it speaks for; the error is the reason (logged only).
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        // Unknown algorithms, `none` included, fail here: jsonwebtoken has no `none`.
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("bad header: {e}"))?;
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                // A JWKS key with an id only signs tokens naming it; keys without ids (the
                // secret, the PEM key) accept any kid.
                (None, Some(_)) => self.keys.iter().filter(|k| k.alg == header.alg).count() == 1,
                (_, None) => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "no key for alg {:?} kid {:?}",
                header.alg, header.kid
            ));
        }
        let validation = self.validation(header.alg);
        let mut last = String::new();
        for key in candidates {
            match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                Ok(data) => return Ok(self.principal(&data.claims)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        match &self.config.issuer {
            Some(iss) => v.set_issuer(&[iss]),
            None => v.iss = None,
        }
        match &self.config.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v
    }

    fn principal(&self, claims: &Value) -> Principal {
        let roles = roles_at(claims, &self.config.roles_claim);
        let id = match claims.get("sub").and_then(Value::as_str) {
            Some(sub) => format!("sub:{sub}"),
            None => "sub:".into(),
        };
        Principal { id, roles }
    }
}

/// Roles under a dotted claim path: a JSON array of names, or one string of names separated
/// by spaces or commas (OAuth's `scope` style).
fn roles_at(claims: &Value, path: &str) -> HashSet<Role> {
    let mut v = claims;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return HashSet::new(),
        }
    }
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(Role::parse)
            .collect(),
        Value::String(s) => s.split([' ', ',']).filter_map(Role::parse).collect(),
        _ => HashSet::new(),
    }
}

/// An RSA key is good for RS256 only, a P-256 key for ES256 only.
fn pem_key(pem: &[u8]) -> anyhow::Result<Key> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok(Key {
            kid: None,
            alg: Algorithm::RS256,
            key,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok(Key {
            kid: None,
            alg: Algorithm::ES256,
            key,
        });
    }
    bail!("not an RSA or EC public key in PEM form")
}

fn jwk_key(jwk: &jsonwebtoken::jwk::Jwk) -> anyhow::Result<Key> {
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        // A symmetric key in a JWKS would let anyone who reads the (public) file sign tokens.
        other => bail!("unsupported key type {other:?}"),
    };
    if let Some(declared) = jwk.common.key_algorithm {
        let declared = format!("{declared:?}");
        if declared != format!("{alg:?}") {
            bail!("key declares alg {declared}, only {alg:?} is accepted for its type");
        }
    }
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key: DecodingKey::from_jwk(jwk).context("unusable JWK")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_come_from_arrays_strings_and_nested_claims() {
        let c = json!({"roles": ["chat", "other"], "scope": "admin chat",
                       "realm_access": {"roles": ["admin"]}});
        assert_eq!(roles_at(&c, "roles"), HashSet::from([Role::Chat]));
        assert_eq!(
            roles_at(&c, "scope"),
            HashSet::from([Role::Chat, Role::Admin])
        );
        assert_eq!(
            roles_at(&c, "realm_access.roles"),
            HashSet::from([Role::Admin])
        );
        assert!(roles_at(&c, "missing").is_empty());
    }
}
