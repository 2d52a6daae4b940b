//! What the server publishes about its own routes: the OpenAPI 3.1 description of the social
//! API at `/openapi.json` (SOC-4), generated from the same declarations that route the
//! requests, and for administrators the inventory of every route with who may call it at
//! `/admin/routes` (RES-6): the public listener's routes, and the admin listener's.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use palisade_http::routes::Inventory;
use palisade_http::{Access, Routes};
use std::sync::{Arc, OnceLock};

/// The two documents, rendered once the whole router is built (they describe it, these two
/// routes included).
#[derive(Clone, Default)]
pub(crate) struct Published(Arc<OnceLock<(String, String)>>);

impl Published {
    pub(crate) fn publish(&self, inventory: &Inventory, admin: &Inventory, issuer: &str) {
        let openapi = inventory.openapi(palisade_social::description(issuer));
        let openapi = openapi
            .to_pretty_json()
            .expect("an OpenAPI document serializes");
        let routes = serde_json::to_string_pretty(&serde_json::json!({
            "routes": inventory.routes,
            "admin_listener": admin.routes,
        }))
        .expect("routes serialize");
        let _ = self.0.set((openapi, routes));
    }

    fn documents(&self) -> &(String, String) {
        self.0.get().expect("published before the server listens")
    }
}

pub(crate) fn router(published: Published) -> Routes {
    Routes::new()
        .route(Access::Public, "GET /openapi.json", openapi)
        .route(Access::AdminKey, "GET /admin/routes", routes)
        .with_state(published)
}

async fn openapi(State(published): State<Published>) -> Response {
    (
        [("content-type", "application/json")],
        published.documents().0.clone(),
    )
        .into_response()
}

async fn routes(State(published): State<Published>) -> Response {
    (
        [("content-type", "application/json")],
        published.documents().1.clone(),
    )
        .into_response()
}
