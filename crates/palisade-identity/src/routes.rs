use crate::{Identity, account, login, passkeys};
use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub fn router(identity: Identity) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/signup", get(login::signup_page).post(login::signup))
        .route("/login", get(login::login_page).post(login::login))
        .route("/login/mfa", get(login::mfa_page).post(login::mfa_submit))
        .route("/login/passkey/options", post(passkeys::login_options))
        .route("/login/passkey", post(passkeys::login))
        .route("/logout", post(login::logout))
        .route("/account", get(account::account_page))
        .route("/account/password", post(account::change_password))
        .route("/account/sessions/revoke", post(account::revoke_session))
        .route(
            "/account/sessions/revoke-others",
            post(account::revoke_other_sessions),
        )
        .route(
            "/account/mfa/totp",
            get(account::totp_page).post(account::totp_enable),
        )
        .route("/account/mfa/totp/disable", post(account::totp_disable))
        .route(
            "/account/recovery-codes",
            post(account::regenerate_recovery_codes),
        )
        .route(
            "/account/passkeys/options",
            post(passkeys::registration_options),
        )
        .route("/account/passkeys", post(passkeys::register))
        .route("/account/passkeys/remove", post(passkeys::remove))
        .route("/static/passkey.js", get(passkeys::script))
        .with_state(identity)
}

async fn home() -> Response {
    Redirect::to("/account").into_response()
}
