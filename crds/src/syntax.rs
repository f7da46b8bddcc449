//! Syntax predicates for names and values Kubernetes and the runtime care about (DNS labels,
//! extended resource names, relative paths, SHA256 hex, cron schedules), shared by validation.

/// Last segment of a slash-separated path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Relative, no empty, `.` or `..` segments: cannot escape the model directory.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != ".." && seg != ".")
}

/// 64 lowercase hex characters.
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// RFC 1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, <= 63.
pub fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// RFC 1035 label (what Service names must be): a DNS label that starts with a letter.
pub fn is_dns1035_label(value: &str) -> bool {
    is_dns_label(value) && value.as_bytes()[0].is_ascii_lowercase()
}

/// RFC 1123 subdomain: dot-separated DNS labels, at most 253 characters.
pub fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_dns_label)
}

/// `DOMAIN/NAME` where DOMAIN is a DNS subdomain with a dot outside kubernetes.io, and NAME a
/// qualified name: Kubernetes' rule for extended resources (device plugins register these).
pub fn is_extended_resource_name(value: &str) -> bool {
    let Some((domain, name)) = value.split_once('/') else {
        return false;
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let k8s_domain = domain == "kubernetes.io" || domain.ends_with(".kubernetes.io");
    name_ok
        && domain.contains('.')
        && is_dns_subdomain(domain)
        && !k8s_domain
        && !domain.starts_with("requests.")
}

/// Five cron fields (or a macro such as `@daily`), as a CronJob accepts them.
pub fn is_cron_schedule(value: &str) -> bool {
    const MACROS: &[&str] = &[
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    if MACROS.contains(&value) {
        return true;
    }
    let fields: Vec<&str> = value.split_whitespace().collect();
    fields.len() == 5
        && fields.iter().all(|f| {
            f.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'/' | b',' | b'-' | b'?'))
        })
}
