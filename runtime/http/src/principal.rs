//! Who is calling: the authenticated principal an auth layer puts into each request's
//! extensions (`request.extensions_mut().insert(Principal { .. })`), for handlers that need the
//! caller's identity (the conversation store's data subject) or roles (`admin` for the privacy
//! endpoints). This crate only defines the type, so the auth layer and the handlers share it
//! without depending on each other.

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The JWT `sub`, or the API key's name.
    pub subject: String,
    pub roles: Vec<String>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
