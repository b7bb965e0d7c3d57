//! What a route asks of its caller, declared with the route in `routes::table`: nothing
//! (public), or a credential whose role reaches the route's. Readers read, search and chat;
//! editors change the library; admins manage identities, tenants and the audit log.

use super::Role;

/// The access a route needs. There is no default: every route names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential is read: the UI, health, the docs, and the sign-in endpoints (which judge
    /// a password or a refresh token themselves).
    Public,
    Reader,
    Editor,
    Admin,
}

impl Access {
    /// The least role a caller needs, or `None` for a public route.
    pub fn role(self) -> Option<Role> {
        match self {
            Self::Public => None,
            Self::Reader => Some(Role::Reader),
            Self::Editor => Some(Role::Editor),
            Self::Admin => Some(Role::Admin),
        }
    }
}
