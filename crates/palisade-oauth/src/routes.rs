//! The provider's routes, each with who may call it; the guard of each access kind runs before
//! the handler (the client guard is `endpoint::ClientGuard`).

use crate::{OAuth, apps, authorize, discovery, introspection, logout, registration};
use crate::{revocation, token, userinfo};
use palisade_http::{Access, Routes};

pub fn router(oauth: OAuth) -> Routes {
    use Access::{AccessToken, Client, Public, RegistrationToken, Session};
    let userinfo_access = AccessToken { scope: "openid" };
    Routes::new()
        .route(
            Public,
            "GET /.well-known/oauth-authorization-server",
            discovery::metadata,
        )
        .route(
            Public,
            "GET /.well-known/openid-configuration",
            discovery::metadata,
        )
        // Sends anyone not signed in to the sign-in page first.
        .route(Public, "GET /oauth/authorize", authorize::get)
        .route(Public, "POST /oauth/authorize", authorize::post)
        .route(
            Session,
            "POST /oauth/authorize/decision",
            authorize::consent::decision,
        )
        .route(Client, "POST /oauth/par", authorize::par::push)
        .route(Client, "POST /oauth/token", token::token)
        .route(Client, "POST /oauth/introspect", introspection::introspect)
        .route(Client, "POST /oauth/revoke", revocation::revoke)
        // Open registration (RFC 7591), rate limited per network.
        .route(Public, "POST /oauth/register", registration::register)
        .route(
            RegistrationToken,
            "GET /oauth/register/{client_id}",
            registration::read,
        )
        .route(
            RegistrationToken,
            "PUT /oauth/register/{client_id}",
            registration::update,
        )
        .route(
            RegistrationToken,
            "DELETE /oauth/register/{client_id}",
            registration::delete,
        )
        // RP-initiated logout asks the signed-in user to confirm; without a session it says so.
        .route(Public, "GET /oauth/logout", logout::page)
        .route(Public, "POST /oauth/logout", logout::confirm)
        .route(Session, "GET /account/apps", apps::page)
        .route(Session, "POST /account/apps/revoke", apps::revoke)
        .route(userinfo_access, "GET /oauth/userinfo", userinfo::userinfo)
        .route(userinfo_access, "POST /oauth/userinfo", userinfo::userinfo)
        .with_state(oauth)
}
