//! Which role each route needs. One table, so the rules can be read (and tested) in one place:
//! readers read, search and chat; editors change the library; admins manage identities,
//! tenants and the audit log. Routes outside `/api/` and `/v1/` (UI, health, docs) and the
//! sign-in endpoints are public.

use axum::http::Method;

use super::Role;

/// Endpoints that authenticate by other means (a password, a refresh token) or decide for
/// themselves (registration is open or admin-only by configuration).
const PUBLIC_API: &[&str] = &[
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/register",
];

const ADMIN_PREFIXES: &[&str] = &[
    "/api/v1/keys",
    "/api/v1/users",
    "/api/v1/tenants",
    "/api/v1/audit",
];

/// Requests that only read or ask, even though they are POSTs.
const READER_POSTS: &[&str] = &[
    "/api/v1/search",
    "/api/v1/chat",
    "/v1/chat/completions",
    "/v1/embeddings",
];

/// The role `method path` needs, or `None` for a public route.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    if !(path.starts_with("/api/") || path.starts_with("/v1/")) || PUBLIC_API.contains(&path) {
        return None;
    }
    if ADMIN_PREFIXES
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return Some(Role::Admin);
    }
    let reads = *method == Method::GET || *method == Method::HEAD;
    let asks = *method == Method::POST && (READER_POSTS.contains(&path) || is_chat_stop(path));
    // Conversations are the caller's chat history: readers may tidy them.
    let own_history = path.starts_with("/api/v1/conversations/")
        && (*method == Method::DELETE || *method == Method::PATCH);
    if reads || asks || own_history {
        Some(Role::Reader)
    } else {
        Some(Role::Editor)
    }
}

fn is_chat_stop(path: &str) -> bool {
    path.strip_prefix("/api/v1/chat/")
        .and_then(|rest| rest.strip_suffix("/stop"))
        .is_some_and(|id| !id.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_read_search_and_chat_editors_change_admins_manage() {
        let cases = [
            (Method::GET, "/healthz", None),
            (Method::GET, "/", None),
            (Method::POST, "/api/v1/auth/login", None),
            (Method::GET, "/api/v1/assets", Some(Role::Reader)),
            (Method::POST, "/api/v1/search", Some(Role::Reader)),
            (Method::POST, "/api/v1/chat", Some(Role::Reader)),
            (Method::POST, "/api/v1/chat/abc/stop", Some(Role::Reader)),
            (Method::POST, "/v1/chat/completions", Some(Role::Reader)),
            (
                Method::DELETE,
                "/api/v1/conversations/x",
                Some(Role::Reader),
            ),
            (Method::POST, "/api/v1/assets", Some(Role::Editor)),
            (Method::DELETE, "/api/v1/assets/x", Some(Role::Editor)),
            (
                Method::POST,
                "/api/v1/assets/x/reprocess",
                Some(Role::Editor),
            ),
            (Method::POST, "/api/v1/keys", Some(Role::Admin)),
            (Method::GET, "/api/v1/keys", Some(Role::Admin)),
            (Method::DELETE, "/api/v1/keys/x", Some(Role::Admin)),
            (Method::GET, "/api/v1/audit/verify", Some(Role::Admin)),
            (Method::POST, "/api/v1/tenants", Some(Role::Admin)),
            (Method::GET, "/api/v1/keysmith", Some(Role::Reader)),
        ];
        for (method, path, role) in cases {
            assert_eq!(required_role(&method, path), role, "{method} {path}");
        }
    }
}
