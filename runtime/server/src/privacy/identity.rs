//! The caller of a request: the `Principal` an auth layer put into the request's extensions,
//! or, only when `--trust-identity-headers` is on (tests, development), the `x-dsr-subject` and
//! `x-dsr-roles` headers.

use axum::http::{Extensions, HeaderMap};

use deepseek_http::Principal;

/// Header naming the subject when identity headers are trusted.
pub const SUBJECT_HEADER: &str = "x-dsr-subject";
/// Header listing the roles (comma-separated) when identity headers are trusted.
pub const ROLES_HEADER: &str = "x-dsr-roles";

/// The caller, if known.
pub fn caller(
    extensions: &Extensions,
    headers: &HeaderMap,
    trust_headers: bool,
) -> Option<Principal> {
    if let Some(p) = extensions.get::<Principal>() {
        return Some(p.clone());
    }
    if !trust_headers {
        return None;
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let subject = text(SUBJECT_HEADER)?.to_string();
    let roles = text(ROLES_HEADER)
        .map(|r| {
            r.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(Principal { subject, roles })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SUBJECT_HEADER, "alice".parse().expect("header"));
        h.insert(ROLES_HEADER, "chat, admin".parse().expect("header"));
        h
    }

    #[test]
    fn identity_headers_count_only_when_trusted_and_a_principal_wins_over_them() {
        assert_eq!(caller(&Extensions::new(), &headers(), false), None);
        let from_headers = caller(&Extensions::new(), &headers(), true).expect("trusted");
        assert_eq!(from_headers.subject, "alice");
        assert!(from_headers.has_role("admin"));
        let mut ext = Extensions::new();
        ext.insert(Principal {
            subject: "bob".into(),
            roles: vec!["chat".into()],
        });
        assert_eq!(
            caller(&ext, &headers(), true).map(|p| p.subject),
            Some("bob".into())
        );
    }
}
