use crate::{Identity, account, login, passkeys};
use axum::response::{IntoResponse, Redirect, Response};
use palisade_http::{Access, Routes};

pub fn router(identity: Identity) -> Routes {
    use Access::{Public, Session};
    Routes::new()
        .route(Public, "GET /", home)
        .route(Public, "GET /signup", login::signup_page)
        .route(Public, "POST /signup", login::signup)
        .route(Public, "GET /login", login::login_page)
        .route(Public, "POST /login", login::login)
        .route(Public, "GET /login/mfa", login::mfa_page)
        .route(Public, "POST /login/mfa", login::mfa_submit)
        .route(
            Public,
            "POST /login/passkey/options",
            passkeys::login_options,
        )
        .route(Public, "POST /login/passkey", passkeys::login)
        .route(Session, "POST /logout", login::logout)
        .route(Session, "GET /account", account::account_page)
        .route(Session, "POST /account/password", account::change_password)
        .route(
            Session,
            "POST /account/sessions/revoke",
            account::revoke_session,
        )
        .route(
            Session,
            "POST /account/sessions/revoke-others",
            account::revoke_other_sessions,
        )
        .route(Session, "GET /account/mfa/totp", account::totp_page)
        .route(Session, "POST /account/mfa/totp", account::totp_enable)
        .route(
            Session,
            "POST /account/mfa/totp/disable",
            account::totp_disable,
        )
        .route(
            Session,
            "POST /account/recovery-codes",
            account::regenerate_recovery_codes,
        )
        .route(
            Session,
            "POST /account/passkeys/options",
            passkeys::registration_options,
        )
        .route(Session, "POST /account/passkeys", passkeys::register)
        .route(Session, "POST /account/passkeys/remove", passkeys::remove)
        .route(Public, "GET /static/passkey.js", passkeys::script)
        .with_state(identity)
}

async fn home() -> Response {
    Redirect::to("/account").into_response()
}
