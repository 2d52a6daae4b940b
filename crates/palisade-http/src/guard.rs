//! Guards (RES-6): the check each kind of [`Access`] requires, run before the handler — before
//! any body is parsed — by the route itself. [`crate::Routes`] installs the guard of a route's
//! declared access when it adds the route, so a route cannot be declared one way and checked
//! another, and handlers never check credentials themselves.
//!
//! The guards are provided by the crates that know the credentials (sessions by identity,
//! clients by the provider, access tokens by the principal) and handed to the router as one
//! [`Guards`] value; a server refuses to start when a declared kind has no guard.

use crate::routes::{Access, Inventory};
use crate::{ApiKeys, AppError};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

/// Checks a request for one kind of access. On success it returns the request, possibly with
/// what it established (a session, a client, a principal) in its extensions; otherwise the
/// refusal to answer with.
pub trait Guard: Send + Sync + 'static {
    fn admit<'a>(
        &'a self,
        access: Access,
        request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>>;
}

/// The guard of every kind of access a server declares.
#[derive(Clone, Default)]
pub struct Guards(Arc<HashMap<&'static str, Arc<dyn Guard>>>);

impl Guards {
    pub fn new() -> Self {
        Self::default()
    }

    /// Guards routes declared with `kind` (`Access::kind`) by `guard`.
    pub fn with(mut self, kind: &'static str, guard: impl Guard) -> Self {
        Arc::make_mut(&mut self.0).insert(kind, Arc::new(guard));
        self
    }

    /// The kinds of access `inventory` declares that no guard checks: a server with any does
    /// not start.
    pub fn unguarded(&self, inventory: &Inventory) -> Vec<&'static str> {
        let mut missing: Vec<&'static str> = inventory
            .routes
            .iter()
            .filter_map(|r| r.access.kind())
            .filter(|kind| !self.0.contains_key(kind))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }
}

/// The middleware every non-public route gets: its declared guard, found in the request's
/// extensions (where the server's outer layer put the [`Guards`]). No guard is no entry.
pub(crate) async fn enforce(access: Access, request: Request, next: Next) -> Response {
    let guard = access.kind().and_then(|kind| {
        request
            .extensions()
            .get::<Guards>()
            .and_then(|guards| guards.0.get(kind).cloned())
    });
    let Some(guard) = guard else {
        return AppError::internal(format!("no guard for {access:?}")).into_response();
    };
    match guard.admit(access, request).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused,
    }
}

/// Administrators' API keys guard `Access::AdminKey` routes.
impl Guard for ApiKeys {
    fn admit<'a>(
        &'a self,
        _: Access,
        request: Request,
    ) -> BoxFuture<'a, Result<Request, Response>> {
        Box::pin(async move {
            self.check(request.headers())?;
            Ok(request)
        })
    }
}
