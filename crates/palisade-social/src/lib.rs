//! The protected social API (SOC-*, RES-*). Every handler takes a [`Principal`]: a request
//! without a valid access token never reaches one.
//!
//! So far: `GET /api/me`, the principal a token acts as; profiles, follows, blocks, mutes and
//! friends (SOC-1); posts and the home timeline (SOC-2); direct messages (SOC-3) — each decided
//! by the Cedar policies — and the same as real-time channels (`SocialChannels`) and the
//! account's messages pages.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

mod decide;
mod graph;
mod messages;
mod pages;
mod posts;
mod profiles;
mod realtime;

pub use realtime::SocialChannels;

use palisade_http::input::Json;
use palisade_http::routes::Documented;
use palisade_http::shed::{Shedder, shed};
use palisade_http::{Access, AppError, Routes};
use palisade_principal::Principal;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::routes;

#[derive(Clone)]
struct Social {
    db: palisade_store::Db,
    authz: Arc<palisade_authz::Authorizer>,
    /// Tells the real-time subscribers of what was stored.
    fanout: palisade_realtime::Fanout,
    /// Stores messages with their notifications, many senders to a commit.
    messages: palisade_store::group_commit::GroupCommit<messages::Stored>,
}

/// The social domain of one node, made once: its REST routes and its real-time channels
/// share it, so messages sent either way go through one group-commit writer.
#[derive(Clone)]
pub struct Service(Social);

impl Service {
    pub fn new(
        db: palisade_store::Db,
        authz: Arc<palisade_authz::Authorizer>,
        fanout: palisade_realtime::Fanout,
    ) -> Self {
        let messages = palisade_store::group_commit::GroupCommit::start(db.clone());
        Self(Social {
            db,
            authz,
            fanout,
            messages,
        })
    }

    /// The social API's real-time channels (conversations, notifications, posts), for the
    /// gateway.
    pub fn channels(&self) -> SocialChannels {
        SocialChannels(self.0.clone())
    }
}

/// The social API's routes, each with its OpenAPI operation and the scope its token needs.
/// Past `shedder`'s bound requests are shed (RES-7); then the route's guard establishes the
/// principal and enforces the scope before the handler runs, and the policies decide the rest.
pub fn router(service: &Service, shedder: Shedder) -> Routes {
    let scoped = |scope: &'static str, documented: Documented<Social>| {
        (Access::AccessToken { scope }, documented)
    };
    let (read, write, messages) = ("social:read", "social:write", "messages");
    [
        scoped(read, routes!(me)),
        scoped(read, routes!(profiles::read)),
        scoped(write, routes!(profiles::update)),
        scoped(write, routes!(profiles::follow)),
        scoped(write, routes!(profiles::block)),
        scoped(write, routes!(profiles::mute)),
        scoped(read, routes!(profiles::friends)),
        scoped(write, routes!(posts::create)),
        scoped(read, routes!(posts::read)),
        scoped(write, routes!(posts::delete)),
        scoped("moderation", routes!(posts::hide)),
        scoped(read, routes!(posts::timeline)),
        scoped(messages, routes!(messages::list, messages::start)),
        scoped(messages, routes!(messages::history, messages::send)),
        scoped(messages, routes!(messages::mark_read)),
    ]
    .into_iter()
    .fold(Routes::new(), |routes, (access, documented)| {
        routes.documented(access, documented)
    })
    .route_layer(axum::middleware::from_fn_with_state(shedder, shed))
    // The account's pages are not shed (the API is).
    .route(Access::Session, "GET /account/messages", pages::list)
    .route(Access::Session, "POST /account/messages", pages::start)
    .route(
        Access::Session,
        "GET /account/messages/{id}",
        pages::conversation,
    )
    .with_state(service.0.clone())
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
/// and key binding.
#[utoipa::path(get, path = "/api/me", tag = "account",
    responses((status = 200, description = "Who the token acts for", body = Me)))]
async fn me(principal: Principal) -> Json<Me> {
    Json(Me {
        role: principal.role.map(|r| r.as_str()),
        subject: principal.subject,
        tenant: principal.tenant.to_string(),
        scopes: principal.scopes.to_vec(),
        client_id: principal.client_id,
        session: principal.session,
        key_binding: principal.key_binding,
    })
}

/// The timeline handler with authentication and authorization taken out, so that
/// `benches/timeline.rs` can measure what protecting it costs. Only the `bench-unprotected`
/// feature builds it, and the server never enables that feature.
#[cfg(feature = "bench-unprotected")]
pub mod unprotected {
    use axum::extract::{Path, State};
    use palisade_http::input::{Json, Query};
    use palisade_http::{Access, AppError, Routes};

    /// `GET /timeline/{viewer}`: the viewer's timeline, everything on it shown.
    pub fn router(db: palisade_store::Db) -> axum::Router {
        async fn timeline(
            State(db): State<palisade_store::Db>,
            Path(viewer): Path<String>,
            Query(page): Query<crate::posts::Page>,
        ) -> Result<Json<crate::posts::Timeline>, AppError> {
            Ok(Json(
                crate::posts::timeline_page(&db, &viewer, page, |posts| vec![true; posts.len()])
                    .await?,
            ))
        }
        Routes::new()
            .route(Access::Public, "GET /timeline/{viewer}", timeline)
            .with_state(db)
            .finish()
            .0
    }
}
