//! The route table: every route the gateway serves, declared once with its method, path,
//! handler, the access it needs and the rate class it is counted in. The axum router
//! ([`router`]), the OpenAPI paths ([`openapi_paths`]), the role check and the rate limit
//! (`auth::guard`, layered on each route with that route's own declaration) all come from
//! [`routes`], so they cannot disagree. A route that is not in the table is not served, and
//! one in it cannot leave out its access or class (there is no fallback to fall into).
//!
//! # Adding a route
//!
//! Annotate the handler with `#[utoipa::path]` (see `crate::openapi`), then add one line:
//! `route!(things::create, Editor, Write)`: the method and path come from the annotation, so
//! the router and the OpenAPI description agree by construction. The few routes outside the
//! API description (static files, metrics) use `Route::undocumented` and say so.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    handler::Handler,
    http::Method,
    middleware,
    routing::{MethodFilter, MethodRouter},
};
use utoipa::openapi::{
    RefOr,
    path::{HttpMethod, Operation, Paths},
    schema::Schema,
};

use super::{
    admin, assets, chat, collections, conversations, embeddings, health, identity, openai, search,
    tenant_quotas, tenants, ui,
};
use crate::{
    auth::{self, policy::Access},
    limits::Class,
    metrics,
    openapi::{self, page},
    state::AppState,
};

/// Route-specific layers that need the state (the upload's body limits).
type Layers = fn(MethodRouter<AppState>, &AppState) -> MethodRouter<AppState>;

/// One method on one path, with everything the edge needs to know about it.
pub struct Route {
    pub method: Method,
    pub path: String,
    pub access: Access,
    /// The bucket the route's requests are counted in (per caller, or per client address on a
    /// public route); `None`: not counted (health, docs, the UI).
    pub class: Option<Class>,
    /// The OpenAPI operation; `None` outside the description.
    doc: Option<Doc>,
    handler: MethodRouter<AppState>,
    layers: Option<Layers>,
}

/// What a route's `#[utoipa::path]` contributes to the OpenAPI description.
struct Doc {
    /// One, so one access and class apply (see the tests).
    methods: Vec<HttpMethod>,
    operation: Operation,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .field("class", &self.class)
            .field("documented", &self.doc.is_some())
            .finish_non_exhaustive()
    }
}

impl Route {
    /// A route described by its handler's `#[utoipa::path]` (`P`, named by [`route!`]), which
    /// gives the method and path.
    fn documented<P, H, T>(handler: H, access: Access, class: Option<Class>) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let methods = P::methods();
        let (method, filter) = methods
            .first()
            .map_or((Method::GET, MethodFilter::GET), methods_of);
        let mut operation = P::operation();
        // What `#[derive(OpenApi)]` does with the annotation's tags and schemas.
        operation
            .tags
            .get_or_insert_with(Vec::new)
            .extend(P::tags().iter().map(ToString::to_string));
        let mut schemas = Vec::new();
        P::schemas(&mut schemas);
        Self {
            handler: MethodRouter::new().on(filter, handler),
            method,
            path: P::path(),
            access,
            class,
            doc: Some(Doc {
                methods,
                operation,
                schemas,
            }),
            layers: None,
        }
    }

    /// A public, uncounted `GET` deliberately left out of the OpenAPI description.
    fn undocumented_get<H, T>(path: &str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self {
            handler: MethodRouter::new().on(MethodFilter::GET, handler),
            method: Method::GET,
            path: path.to_owned(),
            access: Access::Public,
            class: None,
            doc: None,
            layers: None,
        }
    }

    fn with_layers(mut self, layers: Layers) -> Self {
        self.layers = Some(layers);
        self
    }

    pub fn documented_in_openapi(&self) -> bool {
        self.doc.is_some()
    }
}

/// `route!(module::handler, Access, Class)`: a documented route; `Unmetered` for no class.
macro_rules! route {
    ($module:ident :: $handler:ident, $access:ident, Unmetered) => {
        pastey::paste! {
            Route::documented::<$module::[<__path_ $handler>], _, _>(
                $module::$handler, Access::$access, None)
        }
    };
    ($module:ident :: $handler:ident, $access:ident, $class:ident) => {
        pastey::paste! {
            Route::documented::<$module::[<__path_ $handler>], _, _>(
                $module::$handler, Access::$access, Some(Class::$class))
        }
    };
}

/// Every route the gateway serves.
pub fn routes() -> Vec<Route> {
    vec![
        // The browser UI, health, metrics and this API's description: public, not counted.
        route!(ui::index, Public, Unmetered),
        route!(ui::api_index, Public, Unmetered),
        Route::undocumented_get("/ui/{*path}", ui::file),
        route!(health::healthz, Public, Unmetered),
        route!(health::readyz, Public, Unmetered),
        Route::undocumented_get("/metrics", metrics::scrape),
        route!(openapi::openapi_json, Public, Unmetered),
        route!(page::docs, Public, Unmetered),
        Route::undocumented_get("/docs/docs.css", page::stylesheet),
        // Sign-in: public (a password or refresh token is judged by the handler), counted per
        // client address.
        route!(identity::login, Public, Auth),
        route!(identity::refresh, Public, Auth),
        route!(identity::logout, Public, Auth),
        route!(identity::register, Public, Auth),
        route!(identity::me, Reader, Auth),
        // The library.
        route!(assets::upload, Editor, Upload).with_layers(assets::upload_limits),
        route!(assets::list, Reader, Read),
        route!(assets::get, Reader, Read),
        route!(assets::delete, Editor, Write),
        route!(assets::cancel, Editor, Write),
        route!(assets::reprocess, Editor, Write),
        route!(assets::events, Reader, Read),
        route!(collections::create, Editor, Write),
        route!(collections::list, Reader, Read),
        route!(collections::get, Reader, Read),
        route!(collections::migrate, Editor, Write),
        route!(collections::cancel_migration, Editor, Write),
        route!(collections::models, Reader, Read),
        // Asking: searches and answers only read, even as POSTs.
        route!(search::search, Reader, Read),
        route!(chat::chat, Reader, Chat),
        route!(chat::stop, Reader, Write),
        route!(chat::resume, Reader, Read),
        // Conversations are the caller's own chat history: readers may tidy them.
        route!(conversations::list, Reader, Read),
        route!(conversations::get, Reader, Read),
        route!(conversations::rename, Reader, Write),
        route!(conversations::delete, Reader, Write),
        // OpenAI-compatible.
        route!(openai::completions, Reader, Chat),
        route!(openai::models, Reader, Read),
        route!(embeddings::create, Reader, Read),
        // Identities, tenants and the audit log.
        route!(admin::create_key, Admin, Write),
        route!(admin::list_keys, Admin, Read),
        route!(admin::revoke_key, Admin, Write),
        route!(admin::create_user, Admin, Write),
        route!(admin::list_users, Admin, Read),
        route!(admin::update_user, Admin, Write),
        route!(tenants::create_route, Admin, Write),
        route!(tenants::list_route, Admin, Read),
        route!(tenant_quotas::get_route, Admin, Read),
        route!(tenant_quotas::put_route, Admin, Write),
        route!(admin::list_audit, Admin, Read),
        route!(admin::verify_audit, Admin, Read),
    ]
}

/// The router serving [`routes`]: each route's handler behind its JSON body limit and its own
/// guard (`auth::guard`: authentication, role, rate limit), so requests that match no route
/// (404) or no method (405) reach the JSON fallbacks without being judged.
pub fn router(state: &AppState) -> Router<AppState> {
    let json_limit = state.config.max_json_bytes;
    routes().into_iter().fold(Router::new(), |router, route| {
        let mut handler = route.handler;
        if let Some(layers) = route.layers {
            handler = layers(handler, state);
        }
        let guard = auth::Guard {
            state: state.clone(),
            access: route.access,
            class: route.class,
        };
        let handler = handler
            // Outer to a route's own limit, which therefore wins (the upload's).
            .route_layer(DefaultBodyLimit::max(json_limit))
            .route_layer(middleware::from_fn_with_state(guard, auth::guard));
        router.route(&route.path, handler)
    })
}

/// The OpenAPI paths of the documented routes, with the schemas they reference.
pub fn openapi_paths() -> (Paths, Vec<(String, RefOr<Schema>)>) {
    let mut paths = Paths::new();
    let mut all_schemas = Vec::new();
    for route in routes() {
        if let Some(doc) = route.doc {
            paths.add_path_operation(&route.path, doc.methods, doc.operation);
            all_schemas.extend(doc.schemas);
        }
    }
    (paths, all_schemas)
}

/// The declaration of `method path` (`path` as declared, e.g. `/api/v1/assets/{id}`).
pub fn declared(method: &Method, path: &str) -> Option<Route> {
    routes()
        .into_iter()
        .find(|r| r.method == *method && r.path == path)
}

/// The axum method and filter of an annotation's method. GET routes answer HEAD too, as
/// axum's `get` does.
fn methods_of(method: &HttpMethod) -> (Method, MethodFilter) {
    match method {
        HttpMethod::Get => (Method::GET, MethodFilter::GET),
        HttpMethod::Post => (Method::POST, MethodFilter::POST),
        HttpMethod::Put => (Method::PUT, MethodFilter::PUT),
        HttpMethod::Patch => (Method::PATCH, MethodFilter::PATCH),
        HttpMethod::Delete => (Method::DELETE, MethodFilter::DELETE),
        HttpMethod::Head => (Method::HEAD, MethodFilter::HEAD),
        HttpMethod::Options => (Method::OPTIONS, MethodFilter::OPTIONS),
        HttpMethod::Trace => (Method::TRACE, MethodFilter::TRACE),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::auth::Role;
    use Access::*;
    use Class::*;

    /// Every route's access and class, pinned: a route added to the table fails here until its
    /// access and class are written down, and a changed one is a visible decision. (The former
    /// policy and rate-class unit tests' cases are all among these.)
    /// Public and not counted: the UI, health, metrics and this API's description.
    const UNMETERED: &[&str] = &[
        "GET /",
        "GET /api",
        "GET /ui/{*path}",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/docs.css",
    ];
    /// Every other route: (METHOD path, access, class).
    const METERED: &[(&str, Access, Class)] = &[
        ("POST /api/v1/auth/login", Public, Auth),
        ("POST /api/v1/auth/refresh", Public, Auth),
        ("POST /api/v1/auth/logout", Public, Auth),
        ("POST /api/v1/auth/register", Public, Auth),
        ("GET /api/v1/auth/me", Reader, Auth),
        ("POST /api/v1/assets", Editor, Upload),
        ("GET /api/v1/assets", Reader, Read),
        ("GET /api/v1/assets/{id}", Reader, Read),
        ("DELETE /api/v1/assets/{id}", Editor, Write),
        ("POST /api/v1/assets/{id}/cancel", Editor, Write),
        ("POST /api/v1/assets/{id}/reprocess", Editor, Write),
        ("GET /api/v1/assets/{id}/events", Reader, Read),
        ("POST /api/v1/collections", Editor, Write),
        ("GET /api/v1/collections", Reader, Read),
        ("GET /api/v1/collections/{id}", Reader, Read),
        ("POST /api/v1/collections/{id}/migration", Editor, Write),
        ("DELETE /api/v1/collections/{id}/migration", Editor, Write),
        ("GET /api/v1/embedding-models", Reader, Read),
        ("POST /api/v1/search", Reader, Read),
        ("POST /api/v1/chat", Reader, Chat),
        ("POST /api/v1/chat/{conversation_id}/stop", Reader, Write),
        ("GET /api/v1/chat/{conversation_id}/events", Reader, Read),
        ("GET /api/v1/conversations", Reader, Read),
        ("GET /api/v1/conversations/{id}", Reader, Read),
        ("PATCH /api/v1/conversations/{id}", Reader, Write),
        ("DELETE /api/v1/conversations/{id}", Reader, Write),
        ("POST /v1/chat/completions", Reader, Chat),
        ("GET /v1/models", Reader, Read),
        ("POST /v1/embeddings", Reader, Read),
        ("POST /api/v1/keys", Admin, Write),
        ("GET /api/v1/keys", Admin, Read),
        ("DELETE /api/v1/keys/{id}", Admin, Write),
        ("POST /api/v1/users", Admin, Write),
        ("GET /api/v1/users", Admin, Read),
        ("PATCH /api/v1/users/{id}", Admin, Write),
        ("POST /api/v1/tenants", Admin, Write),
        ("GET /api/v1/tenants", Admin, Read),
        ("GET /api/v1/tenants/{id}/quotas", Admin, Read),
        ("PUT /api/v1/tenants/{id}/quotas", Admin, Write),
        ("GET /api/v1/audit", Admin, Read),
        ("GET /api/v1/audit/verify", Admin, Read),
    ];

    fn pairs(list: impl IntoIterator<Item = (String, String)>) -> BTreeSet<(String, String)> {
        list.into_iter().collect()
    }

    #[test]
    fn every_route_declares_the_access_and_class_pinned_here() {
        let routes = routes();
        let pinned: Vec<(&str, Access, Option<Class>)> = UNMETERED
            .iter()
            .map(|route| (*route, Public, None))
            .chain(METERED.iter().map(|(route, a, c)| (*route, *a, Some(*c))))
            .collect();
        for route in &routes {
            let name = format!("{} {}", route.method, route.path);
            let Some((_, access, class)) = pinned.iter().find(|(r, ..)| *r == name) else {
                panic!("{name} is not pinned here: add its access and class");
            };
            assert_eq!((route.access, route.class), (*access, *class), "{name}");
        }
        let served = pairs(
            routes
                .iter()
                .map(|r| (r.method.to_string(), r.path.clone())),
        );
        let pinned =
            pairs(pinned.iter().filter_map(|(r, ..)| {
                r.split_once(' ').map(|(m, p)| (m.to_owned(), p.to_owned()))
            }));
        assert_eq!(served, pinned, "pinned routes the table does not declare");
        assert_eq!(routes.len(), served.len(), "a route is declared twice");
    }

    #[test]
    fn access_follows_no_path_prefix() {
        // Once the policy matched prefixes: a path that merely starts like an admin one is no
        // route at all now (404 for everyone), and the admin routes are admin by declaration.
        assert!(declared(&Method::GET, "/api/v1/keysmith").is_none());
        let keys = declared(&Method::GET, "/api/v1/keys").map(|r| r.access.role());
        assert_eq!(keys, Some(Some(Role::Admin)));
    }

    #[test]
    fn each_annotation_names_one_method() {
        for route in routes() {
            if let Some(doc) = &route.doc {
                assert_eq!(doc.methods.len(), 1, "{}", route.path);
            }
        }
    }

    #[test]
    fn the_openapi_paths_are_the_documented_routes_and_only_those() {
        let spec = crate::openapi::spec();
        let described = pairs(spec["paths"].as_object().into_iter().flatten().flat_map(
            |(path, item)| {
                item.as_object()
                    .into_iter()
                    .flat_map(|methods| methods.keys())
                    .map(|method| (method.to_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            },
        ));
        let routes = routes();
        let documented = pairs(
            routes
                .iter()
                .filter(|r| r.documented_in_openapi())
                .map(|r| (r.method.to_string(), r.path.clone())),
        );
        assert_eq!(described, documented);
        let undocumented = pairs(
            routes
                .iter()
                .filter(|r| !r.documented_in_openapi())
                .map(|r| (r.method.to_string(), r.path.clone())),
        );
        let expected = pairs(
            [
                ("GET", "/ui/{*path}"),
                ("GET", "/metrics"),
                ("GET", "/docs/docs.css"),
            ]
            .map(|(m, p)| (m.to_owned(), p.to_owned())),
        );
        assert_eq!(
            undocumented, expected,
            "only static files and metrics stay out"
        );
    }

    #[test]
    fn the_description_marks_exactly_the_public_routes_public() {
        let spec = crate::openapi::spec();
        for route in routes().into_iter().filter(Route::documented_in_openapi) {
            let operation = &spec["paths"][&route.path][route.method.as_str().to_lowercase()];
            let takes_no_credential =
                operation["security"]
                    .as_array()
                    .is_some_and(|requirements| {
                        requirements.iter().any(|r| r == &serde_json::json!({}))
                    });
            assert_eq!(
                takes_no_credential,
                route.access == Access::Public,
                "{} {}: the annotation's security disagrees with the declared access",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn routes_are_added_to_the_router_only_from_this_table() {
        // axum cannot list a router's routes; the builders that could add one past the table
        // must not appear where the router is assembled.
        for (file, source) in [
            ("src/lib.rs", include_str!("../lib.rs")),
            ("src/routes/mod.rs", include_str!("mod.rs")),
        ] {
            for call in [
                ".route(",
                ".route_service(",
                ".nest(",
                ".merge(",
                ".nest_service(",
            ] {
                assert!(
                    !source.contains(call),
                    "{file} calls {call}: declare the route in routes::table"
                );
            }
        }
        let table = include_str!("table.rs");
        let body = table.split("#[cfg(test)]").next().unwrap_or_default();
        assert_eq!(
            body.matches(".route(").count(),
            1,
            "the table adds routes in one place"
        );
    }
}
