//! The protected social API (SOC-*, RES-*). Every handler takes a [`Principal`]: a request
//! without a valid access token never reaches one.
//!
//! So far: `GET /api/me`, the principal a token acts as; profiles, follows, blocks, mutes and
//! friends (SOC-1); posts and the home timeline (SOC-2); direct messages (SOC-3) — each decided
//! by the Cedar policies.

mod decide;
mod graph;
mod messages;
mod posts;
mod profiles;

use axum::Json;
use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use palisade_http::{Access, AppError, Routes};
use palisade_oauth::OAuth;
use palisade_oauth::principal::Principal;
use palisade_oauth::resource::{ResourceError, Scheme};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::routes;

#[derive(Clone)]
struct Social {
    oauth: OAuth,
    db: palisade_store::Db,
    authz: Arc<palisade_authz::Authorizer>,
}

impl FromRef<Social> for OAuth {
    fn from_ref(social: &Social) -> OAuth {
        social.oauth.clone()
    }
}

/// The social API's routes, each with its OpenAPI operation and the scope its token needs.
pub fn router(
    oauth: OAuth,
    db: palisade_store::Db,
    authz: Arc<palisade_authz::Authorizer>,
) -> Routes {
    let read = Access::AccessToken {
        scope: "social:read",
    };
    let write = Access::AccessToken {
        scope: "social:write",
    };
    let messages = Access::AccessToken { scope: "messages" };
    Routes::new()
        .documented(read, routes!(me))
        .documented(read, routes!(profiles::read))
        .documented(write, routes!(profiles::update))
        .documented(write, routes!(profiles::follow))
        .documented(write, routes!(profiles::block))
        .documented(write, routes!(profiles::mute))
        .documented(read, routes!(profiles::friends))
        .documented(write, routes!(posts::create))
        .documented(read, routes!(posts::read))
        .documented(write, routes!(posts::delete))
        .documented(
            Access::AccessToken {
                scope: "moderation",
            },
            routes!(posts::hide),
        )
        .documented(read, routes!(posts::timeline))
        .documented(messages, routes!(messages::list, messages::start))
        .documented(messages, routes!(messages::history, messages::send))
        .documented(messages, routes!(messages::mark_read))
        .with_state(Social { oauth, db, authz })
}

/// The frame of the API's OpenAPI 3.1 description: what it is and how to get a token for it.
/// The operations come from the routes.
pub fn description(issuer: &str) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{AuthorizationCode, Flow, OAuth2, Scopes, SecurityScheme};
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
    let scopes = Scopes::from_iter([
        ("social:read", "Read profiles, posts and the timeline"),
        (
            "social:write",
            "Change one's profile, follows, blocks, mutes and posts",
        ),
        ("messages", "Read and send direct messages"),
        ("moderation", "Hide posts (moderators)"),
        ("openid", "Sign in with OpenID Connect"),
    ]);
    let flow = AuthorizationCode::new(
        format!("{issuer}/oauth/authorize"),
        format!("{issuer}/oauth/token"),
        scopes,
    );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Palisade social API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Profiles, follows, posts and direct messages. Every operation takes an \
                     access token from this server, as a Bearer token or DPoP-bound with a \
                     proof; the policies decide each request on the object it names.",
                ))
                .build(),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "oauth2",
                    SecurityScheme::OAuth2(OAuth2::new([Flow::AuthorizationCode(flow)])),
                )
                .build(),
        ))
        .build()
}

/// The page size a request asks for: `default` when it names none, refused outside 1..=`max`.
fn page_size(limit: Option<i64>, default: i64, max: i64) -> Result<i64, AppError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(AppError::bad_request(
            "invalid_limit",
            format!("limit is from 1 to {max}."),
        )),
    }
}

/// Who a token acts for.
#[derive(Serialize, ToSchema)]
struct Me {
    /// The user, or the client acting for itself.
    subject: String,
    tenant: String,
    /// A user's role; null for a client acting for itself.
    role: Option<&'static str>,
    scopes: Vec<String>,
    client_id: String,
    /// The browser session the grant came from.
    session: Option<String>,
    /// The JWK thumbprint of the DPoP key the token is bound to.
    key_binding: Option<String>,
}

/// The principal the request's token acts as: subject, tenant, role, scopes, client, session
/// and key binding. Needs `social:read`.
#[utoipa::path(get, path = "/api/me", tag = "account",
    responses((status = 200, description = "Who the token acts for", body = Me)))]
async fn me(principal: Principal) -> Response {
    if !principal.has_scope("social:read") {
        let scheme = if principal.key_binding.is_some() {
            Scheme::DPoP
        } else {
            Scheme::Bearer
        };
        return ResourceError::insufficient_scope(scheme).into_response();
    }
    Json(Me {
        role: principal.role.map(|r| r.as_str()),
        subject: principal.subject,
        tenant: principal.tenant,
        scopes: principal.scopes,
        client_id: principal.client_id,
        session: principal.session,
        key_binding: principal.key_binding,
    })
    .into_response()
}
