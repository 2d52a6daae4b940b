//! Every route the server answers, declared with who may call it (RES-6). Routes are added only
//! through [`Routes`], which records the method, the path and the [`Access`] in the same call
//! that hands the handler to axum — with the guard of that access kind in front of it
//! ([`crate::guard`]) — so the inventory cannot drift from the router and the declaration is
//! what is enforced. `clippy.toml` forbids `Router::route` (and `nest`, `fallback`) everywhere
//! else, and the inventory test probes every protected route without credentials.
//!
//! Routes of the public JSON API are registered with their OpenAPI operation (`utoipa`'s
//! `routes!`), so `/openapi.json` is generated from the same declarations: the security
//! requirement of each operation is written here from its [`Access`], never by hand.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use http::Method;
use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Paths, Ref, RefOr, Schema};

/// Who may call a route. There is no default: each route names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// A signed-in browser session (the session cookie, and CSRF checks on writes).
    Session,
    /// An OAuth client authenticating itself as its grant or registration requires.
    Client,
    /// The registration access token issued with a dynamically registered client (RFC 7592).
    RegistrationToken,
    /// An administrator's API key.
    AdminKey,
    /// A service's API key, or an access token granting `audit:write`.
    ServiceKey,
    /// An access token from this server (Bearer, or DPoP with a proof) granting `scope`; the
    /// policies decide the rest.
    AccessToken { scope: &'static str },
    /// A request whose body is signed by a party the server already knows (a witness's logs).
    SignedBody,
    /// A WebSocket upgrade, authenticated before it happens: a one-time ticket or an access
    /// token in `Sec-WebSocket-Protocol`, or the session cookie from an allowed Origin.
    Realtime,
    /// A one-time join token from `palisade ca join-token`, exchanged for a first X.509-SVID.
    JoinToken,
    /// An X.509-SVID of the internal CA, presented on the mTLS listener.
    Svid,
    /// An X.509-SVID whose SPIFFE ID `ca.allow` lists for `group`.
    Workload { group: &'static str },
}

impl Access {
    /// The name of the kind, as the inventory shows it; `None` for public routes, which have
    /// no guard.
    pub fn kind(self) -> Option<&'static str> {
        Some(match self {
            Access::Public => return None,
            Access::Session => "session",
            Access::Client => "client",
            Access::RegistrationToken => "registration_token",
            Access::AdminKey => "admin_key",
            Access::ServiceKey => "service_key",
            Access::AccessToken { .. } => "access_token",
            Access::SignedBody => "signed_body",
            Access::Realtime => "realtime",
            Access::JoinToken => "join_token",
            Access::Svid | Access::Workload { .. } => "workload",
        })
    }
}

/// `handler` behind the guard of `access`.
fn guarded<S: Clone + Send + Sync + 'static>(
    access: Access,
    handler: MethodRouter<S>,
) -> MethodRouter<S> {
    if access == Access::Public {
        return handler;
    }
    handler.route_layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            crate::guard::enforce(access, request, next)
        },
    ))
}

/// One declared route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub access: Access,
}

/// A router under construction, with its inventory and its OpenAPI operations.
pub struct Routes<S = ()> {
    router: Router<S>,
    inventory: Vec<Route>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self {
            router: Router::new(),
            inventory: Vec::new(),
            paths: Paths::new(),
            schemas: Vec::new(),
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `handler` for `spec`, written `"METHOD /path"` as in `"GET /healthz"`.
    pub fn route<H, T>(mut self, access: Access, spec: &str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let (method, path) = parse_spec(spec);
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("unroutable method in {spec:?}"));
        self.add(access, method, path, on(filter, handler));
        self
    }

    /// Adds the handlers of one path with their OpenAPI operations, as `utoipa_axum::routes!`
    /// returns them. Each operation's security requirement and common error answers come from
    /// `access`.
    pub fn documented(mut self, access: Access, documented: Documented<S>) -> Self {
        let (schemas, mut paths, methods) = documented;
        for (path, item) in paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                describe(operation, access);
                self.inventory.push(Route {
                    method: method.to_string(),
                    path: path.clone(),
                    access,
                });
            }
            #[allow(clippy::disallowed_methods)] // the one place routes are handed to axum
            {
                self.router = self.router.route(path, guarded(access, methods.clone()));
            }
        }
        self.paths.merge(paths);
        self.schemas.extend(schemas);
        self
    }

    fn add(&mut self, access: Access, method: Method, path: &str, handler: MethodRouter<S>) {
        self.inventory.push(Route {
            method: method.to_string(),
            path: path.to_owned(),
            access,
        });
        #[allow(clippy::disallowed_methods)] // the one place routes are handed to axum
        {
            self.router = std::mem::take(&mut self.router).route(path, guarded(access, handler));
        }
    }

    /// Wraps every route added so far, outside its guard: what must happen before anything
    /// else (load shedding).
    pub fn route_layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Error:
            Into<std::convert::Infallible> + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        self.router = self.router.route_layer(layer);
        self
    }

    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.inventory.extend(other.inventory);
        self.paths.merge(other.paths);
        self.schemas.extend(other.schemas);
        self
    }

    /// Provides the state, as `Router::with_state`.
    pub fn with_state<S2: Clone + Send + Sync + 'static>(self, state: S) -> Routes<S2> {
        Routes {
            router: self.router.with_state(state),
            inventory: self.inventory,
            paths: self.paths,
            schemas: self.schemas,
        }
    }

    /// The router and what was declared: the route inventory and the OpenAPI paths and schemas.
    pub fn finish(self) -> (Router<S>, Inventory) {
        let mut inventory = self.inventory;
        inventory.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
        let mut components = Components::new();
        components.schemas.extend(self.schemas);
        (
            self.router,
            Inventory {
                routes: inventory,
                paths: self.paths,
                components,
            },
        )
    }
}

/// What `utoipa_axum::routes!` produces: schemas, the path's operations and its handlers.
pub type Documented<S> = (Vec<(String, RefOr<Schema>)>, Paths, MethodRouter<S>);

/// The declared routes of a server and the OpenAPI description of its documented ones.
pub struct Inventory {
    pub routes: Vec<Route>,
    pub paths: Paths,
    pub components: Components,
}

impl Inventory {
    /// An OpenAPI 3.1 document of the documented routes, completed by `base` (title, version,
    /// security schemes).
    pub fn openapi(&self, mut base: OpenApi) -> OpenApi {
        base.paths.merge(self.paths.clone());
        let components = base.components.get_or_insert_with(Components::new);
        components.schemas.extend(self.components.schemas.clone());
        components.schemas.insert(
            ERROR_SCHEMA.into(),
            <ErrorBody as utoipa::PartialSchema>::schema(),
        );
        base
    }
}

/// The name of the error body schema every documented error answer refers to.
pub const ERROR_SCHEMA: &str = "ErrorBody";

/// The rendered error body (see `stack.rs`): a stable code, a message, the trace id.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // exists for its schema
pub struct ErrorBody {
    /// A stable, machine-readable reason.
    error: String,
    message: String,
    trace_id: String,
}

fn parse_spec(spec: &str) -> (Method, &str) {
    let (method, path) = spec
        .split_once(' ')
        .unwrap_or_else(|| panic!("route {spec:?} is not \"METHOD /path\""));
    let method = Method::from_bytes(method.as_bytes())
        .unwrap_or_else(|_| panic!("route {spec:?} has no method"));
    (method, path)
}

fn operations(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::PATCH, &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_mut().map(|op| (m, op)))
    .collect()
}

/// Writes the security requirement and the error answers every operation with `access` can give.
fn describe(operation: &mut Operation, access: Access) {
    let mut errors: Vec<(&str, &str)> = vec![("429", "Too many requests; see Retry-After.")];
    if let Access::AccessToken { scope } = access {
        operation.security = Some(vec![SecurityRequirement::new("oauth2", [scope])]);
        errors.push(("403", "The token lacks the scope, or the policies refuse."));
        errors.push(("503", "Overloaded: the request was shed; see Retry-After."));
    }
    let has_input = operation.request_body.is_some()
        || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if has_input {
        errors.push(("400", "The input is malformed or invalid."));
    }
    let names_object = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path);
    if names_object {
        errors.push(("404", "Nothing by this id that the principal may see."));
    }
    if operation.request_body.is_some() {
        errors.extend([
            ("413", "The body is too large."),
            ("415", "The body is not JSON."),
            ("422", "The JSON does not have the expected fields."),
        ]);
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in errors {
        responses
            .entry(status.into())
            .or_insert_with(|| RefOr::T(error_response(description)));
    }
    if access != Access::Public {
        responses.entry("401".into()).or_insert_with(|| {
            RefOr::T(error_response(
                "No valid credentials; the challenge is in WWW-Authenticate.",
            ))
        });
    }
}

fn error_response(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
                .build(),
        )
        .build()
}
