//! Which role each path needs. One table for the server and the router, so both enforce the
//! same rules: health and readiness are open (kubelet probes carry no token), chat needs
//! `chat`, everything administrative (stats, metrics, privacy) needs `admin`.

/// A role a credential can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Chat,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Chat => "chat",
            Role::Admin => "admin",
        }
    }

    /// Unknown role names are ignored (a token may carry roles meant for other services).
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "chat" => Some(Role::Chat),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a request to `path` needs: `None` for the open probe endpoints.
pub fn required_role(path: &str) -> Option<Role> {
    match path {
        "/healthz" | "/readyz" => None,
        "/metrics" => Some(Role::Admin),
        p if p.starts_with("/admin/") || p == "/admin" => Some(Role::Admin),
        p if p.starts_with("/v1/privacy/") || p == "/v1/privacy" => Some(Role::Admin),
        // `/v1/*`, `/ws/chat`, and any other path the router would forward.
        _ => Some(Role::Chat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_open_chat_needs_chat_and_admin_paths_need_admin() {
        assert_eq!(required_role("/healthz"), None);
        assert_eq!(required_role("/readyz"), None);
        assert_eq!(required_role("/v1/chat/completions"), Some(Role::Chat));
        assert_eq!(required_role("/v1/models"), Some(Role::Chat));
        assert_eq!(required_role("/ws/chat"), Some(Role::Chat));
        assert_eq!(required_role("/admin/stats"), Some(Role::Admin));
        assert_eq!(required_role("/metrics"), Some(Role::Admin));
        assert_eq!(
            required_role("/v1/privacy/subjects/u1/conversations"),
            Some(Role::Admin)
        );
        assert_eq!(required_role("/healthz/../v1/models"), Some(Role::Chat));
    }
}
