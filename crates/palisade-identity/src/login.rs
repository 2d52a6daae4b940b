//! Sign-up, sign-in (password, then a second factor when enrolled) and sign-out.

use crate::assurance::SignInMethod;
use crate::context::{RequestContext, SignedIn, safe_return_to};
use crate::csrf::{Csrf, CsrfForm};
use crate::sessions::{self, NewSession};
use crate::users::{self, Email, User};
use crate::{Identity, OutcomeLabel, cookies, pages, recovery, totp};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, StatusCode, header};
use palisade_audit::{Action, Outcome};
use palisade_crypto::Secret;
use palisade_http::AppError;
use palisade_http::input::Query;
use serde::Deserialize;
use std::time::Duration;

const BAD_CREDENTIALS: &str = "Incorrect email address or password.";
const MFA_LIFETIME: Duration = Duration::from_secs(5 * 60);

#[derive(Deserialize)]
pub(crate) struct SignUpForm {
    email: String,
    password: Secret<String>,
}

pub(crate) async fn signup_page(
    State(id): State<Identity>,
    headers: HeaderMap,
    csrf: Csrf,
) -> Result<Response, AppError> {
    let signed_in = SignedIn::from_headers(&id, &headers).await?.is_some();
    let page = pages::SignUp {
        csrf: &csrf.token,
        signed_in,
        error: None,
        min_password_length: id.config.min_password_length,
    };
    Ok((csrf.clone(), pages::render(StatusCode::OK, &page)).into_response())
}

/// Creates the account if the address is new. The answer is the same either way (IDN-2): a
/// redirect to the sign-in page, after a password hash in both cases so timing matches too.
pub(crate) async fn signup(
    State(id): State<Identity>,
    ctx: RequestContext,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<SignUpForm>,
) -> Result<Response, AppError> {
    let invalid = |error: &str| {
        let page = pages::SignUp {
            csrf: &csrf.token,
            signed_in: false,
            error: Some(error),
            min_password_length: id.config.min_password_length,
        };
        pages::render(StatusCode::BAD_REQUEST, &page)
    };
    let Some(email) = Email::parse(&form.email) else {
        return Ok(invalid("Enter a valid email address."));
    };
    if let Err(message) =
        check_password_rules(&id.config, form.password.expose(), &email.normalized)
    {
        return Ok(invalid(&message));
    }
    let hash = id.hasher.hash(form.password).await?;
    match users::create(&id.db, &id.tenant, &email, &hash).await {
        Ok(user_id) => {
            id.auditor
                .record(
                    ctx.event(Action::SignUp, Outcome::Success, &id.tenant)
                        .actor(user_id),
                )
                .await?;
        }
        Err(e) if e.is_unique_violation() => {
            id.auditor
                .record(
                    ctx.event(Action::SignUp, Outcome::Failure, &id.tenant)
                        .detail("reason", "address_taken"),
                )
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to("/login?notice=signed_up").into_response())
}

pub fn check_password_rules(
    config: &crate::IdentityConfig,
    password: &str,
    email: &str,
) -> Result<(), String> {
    let len = password.chars().count();
    if len < config.min_password_length {
        return Err(format!(
            "Use at least {} characters.",
            config.min_password_length
        ));
    }
    if len > 256 {
        return Err("Use at most 256 characters.".into());
    }
    if password.to_lowercase() == email.to_lowercase() {
        return Err("Your password cannot be your email address.".into());
    }
    Ok(())
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    notice: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    login_hint: String,
}

fn login_notice(key: &str) -> Option<&'static str> {
    match key {
        "signed_up" => Some("Thanks. Sign in with your email address and password."),
        "signed_out" => Some("You have signed out."),
        "password_changed" => Some("Your password was changed. Sign in again."),
        "mfa_expired" => Some("The verification step expired. Sign in again."),
        "second_factor" => Some(
            "This application asks for a second factor: sign in with a passkey, or with your \
             password and authenticator code.",
        ),
        _ => None,
    }
}

/// A sign-in page whose form may end at an application: when the user returns to an
/// authorization request, the redirects after signing in lead to its redirect URI, whose origin
/// the page's `form-action` must allow.
fn for_return_to(mut page: Response, return_to: &str) -> Response {
    let target = return_to
        .strip_prefix("/oauth/authorize?")
        .and_then(|query| palisade_http::forms::parse_pairs(query.as_bytes()).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "redirect_uri"));
    if let Some((_, uri)) = target {
        palisade_http::headers::allow_form_target(&mut page, &uri);
    }
    page
}

pub(crate) async fn login_page(
    State(id): State<Identity>,
    headers: HeaderMap,
    csrf: Csrf,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let signed_in = SignedIn::from_headers(&id, &headers).await?.is_some();
    let hint: String = q.login_hint.chars().take(254).collect();
    let page = pages::Login {
        csrf: &csrf.token,
        signed_in,
        notice: login_notice(&q.notice),
        error: None,
        return_to: safe_return_to(&q.return_to),
        login_hint: &hint,
    };
    let rendered = pages::render(StatusCode::OK, &page);
    Ok((csrf.clone(), for_return_to(rendered, page.return_to)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    email: String,
    password: Secret<String>,
    /// The tenant's id; blank for the default tenant (IDN-8).
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    return_to: String,
}

pub(crate) async fn login(
    State(id): State<Identity>,
    ctx: RequestContext,
    headers: HeaderMap,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    // An unparsable address still goes through the full path: it just never matches.
    let account = Email::parse(&form.email)
        .map(|e| e.normalized)
        .unwrap_or_else(|| form.email.trim().to_lowercase());
    let return_to = safe_return_to(&form.return_to).to_owned();
    // An account is looked up in the tenant named, so an address may belong to accounts of
    // several organisations. An unknown organisation fails exactly like a wrong password.
    let organisation = form.organisation.trim().to_lowercase();
    let tenant = if organisation.is_empty() {
        id.tenant.as_str()
    } else {
        organisation.as_str()
    };
    let user = users::find_by_email(&id.db, tenant, &account).await?;
    let throttle_key = crate::throttle::account_key(tenant, &account);
    // Events name a tenant that exists, never whatever was typed.
    let event_tenant = user
        .as_ref()
        .map_or_else(|| id.tenant.clone(), |u| u.tenant_id.clone());

    if let Some(retry_after) = id.throttle.wait(&throttle_key, ctx.ip).await {
        id.metrics
            .logins
            .get_or_create(&OutcomeLabel {
                outcome: "throttled",
            })
            .inc();
        let mut event = ctx.event(Action::LoginThrottled, Outcome::Failure, &event_tenant);
        if let Some(u) = &user {
            event = event.actor(u.id.clone());
        }
        id.auditor.record(event).await?;
        return Err(AppError::TooManyRequests { retry_after });
    }

    let stored = user.as_ref().map(|u| u.password_hash.clone());
    if !id.hasher.verify(form.password, stored).await? {
        id.throttle.record_failure(&throttle_key, ctx.ip).await;
        id.metrics
            .logins
            .get_or_create(&OutcomeLabel { outcome: "failure" })
            .inc();
        let mut event = ctx
            .event(Action::LoginFailed, Outcome::Failure, &event_tenant)
            .detail("reason", "bad_credentials");
        if let Some(u) = &user {
            event = event.actor(u.id.clone());
        }
        id.auditor.record(event).await?;
        let page = pages::Login {
            csrf: &csrf.token,
            signed_in: false,
            notice: None,
            error: Some(BAD_CREDENTIALS),
            return_to: &return_to,
            login_hint: "",
        };
        let rendered = pages::render(StatusCode::UNAUTHORIZED, &page);
        return Ok(for_return_to(rendered, &return_to));
    }
    let user = user.expect("a verified password implies an account");
    id.throttle.record_success(&throttle_key).await;
    if user.is_locked() {
        id.auditor
            .record(
                ctx.event(Action::LoginFailed, Outcome::Failure, &user.tenant_id)
                    .actor(user.id.clone())
                    .detail("reason", "locked"),
            )
            .await?;
        return Err(AppError::forbidden(
            "account_locked",
            "This account is locked. Contact an administrator.",
        ));
    }

    if user.has_totp() {
        let challenge =
            sessions::create_challenge(&id.db, &user.id, palisade_store::now_ms()).await?;
        let target = format!(
            "/login/mfa?return_to={}",
            percent_encoding::utf8_percent_encode(&return_to, percent_encoding::NON_ALPHANUMERIC)
        );
        let mut response = Redirect::to(&target).into_response();
        response.headers_mut().append(
            header::SET_COOKIE,
            cookies::set(cookies::MFA, &challenge, MFA_LIFETIME, "Strict"),
        );
        return Ok(response);
    }
    establish_session(
        &id,
        &ctx,
        &headers,
        &user,
        SignInMethod::Password,
        &return_to,
    )
    .await
}

/// Signs the user in and sends them on to `return_to`.
pub(crate) async fn establish_session(
    id: &Identity,
    ctx: &RequestContext,
    headers: &HeaderMap,
    user: &User,
    method: SignInMethod,
    return_to: &str,
) -> Result<Response, AppError> {
    let cookie = start_session(id, ctx, headers, user, method).await?;
    let mut response = Redirect::to(return_to).into_response();
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, cookie);
    if cookies::get(headers, cookies::MFA).is_some() {
        h.append(header::SET_COOKIE, cookies::clear(cookies::MFA));
    }
    Ok(response)
}

/// Starts a fresh session (never reusing a token the browser already had: no fixation), ends
/// the browser's previous one and records the login. Returns the session's `Set-Cookie` value.
pub(crate) async fn start_session(
    id: &Identity,
    ctx: &RequestContext,
    headers: &HeaderMap,
    user: &User,
    method: SignInMethod,
) -> Result<http::HeaderValue, AppError> {
    if let Some(old) = SignedIn::from_headers(id, headers).await? {
        sessions::revoke(&id.db, &old.user.id, &old.session.id_hash).await?;
    }
    let now = palisade_store::now_ms();
    let new = NewSession {
        user_id: &user.id,
        method,
        ip: &palisade_audit::truncate_ip(ctx.ip),
        user_agent: &ctx.user_agent,
    };
    let token = sessions::create(&id.db, new, now, id.config.session_absolute()).await?;
    id.metrics
        .logins
        .get_or_create(&OutcomeLabel { outcome: "success" })
        .inc();
    id.auditor
        .record(
            ctx.event(Action::LoginSucceeded, Outcome::Success, &user.tenant_id)
                .actor(user.id.clone())
                .detail("amr", method.amr()),
        )
        .await?;
    Ok(cookies::set(
        cookies::SESSION,
        &token,
        id.config.session_absolute(),
        "Lax",
    ))
}

pub(crate) async fn mfa_page(
    State(id): State<Identity>,
    headers: HeaderMap,
    csrf: Csrf,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let live = match cookies::get(&headers, cookies::MFA) {
        Some(token) => sessions::is_challenge_live(&id.db, token, palisade_store::now_ms()).await?,
        None => false,
    };
    if !live {
        return Ok(Redirect::to("/login?notice=mfa_expired").into_response());
    }
    let page = pages::LoginMfa {
        csrf: &csrf.token,
        signed_in: false,
        error: None,
        return_to: safe_return_to(&q.return_to),
    };
    let rendered = pages::render(StatusCode::OK, &page);
    Ok((csrf.clone(), for_return_to(rendered, page.return_to)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct MfaForm {
    code: Secret<String>,
    #[serde(default)]
    return_to: String,
}

pub(crate) async fn mfa_submit(
    State(id): State<Identity>,
    ctx: RequestContext,
    headers: HeaderMap,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<MfaForm>,
) -> Result<Response, AppError> {
    let return_to = safe_return_to(&form.return_to).to_owned();
    let now = palisade_store::now_ms();
    let Some(challenge) = cookies::get(&headers, cookies::MFA) else {
        return Ok(Redirect::to("/login?notice=mfa_expired").into_response());
    };
    let Some(user_id) = sessions::attempt_challenge(&id.db, challenge, now).await? else {
        return Ok(Redirect::to("/login?notice=mfa_expired").into_response());
    };
    let Some(user) = users::get(&id.db, &user_id).await? else {
        return Ok(Redirect::to("/login?notice=mfa_expired").into_response());
    };
    let throttle_key = format!("mfa:{}", user.id);
    if let Some(retry_after) = id.throttle.wait(&throttle_key, ctx.ip).await {
        return Err(AppError::TooManyRequests { retry_after });
    }

    let code = form.code.expose();
    let (accepted, method) = if recovery::looks_like_code(code) {
        let used = recovery::consume(&id.db, &user.id, code).await?;
        (used, SignInMethod::PasswordAndRecoveryCode)
    } else {
        let valid = verify_totp(&id, &user, code, now).await?;
        (valid, SignInMethod::PasswordAndTotp)
    };
    if !accepted {
        id.throttle.record_failure(&throttle_key, ctx.ip).await;
        id.auditor
            .record(
                ctx.event(Action::MfaFailed, Outcome::Failure, &user.tenant_id)
                    .actor(user.id.clone()),
            )
            .await?;
        let page = pages::LoginMfa {
            csrf: &csrf.token,
            signed_in: false,
            error: Some("That code is not valid. Codes work once; wait for the next one."),
            return_to: &return_to,
        };
        let rendered = pages::render(StatusCode::UNAUTHORIZED, &page);
        return Ok(for_return_to(rendered, &return_to));
    }
    id.throttle.record_success(&throttle_key).await;
    sessions::finish_challenge(&id.db, challenge).await?;
    if method == SignInMethod::PasswordAndRecoveryCode {
        let remaining = recovery::remaining(&id.db, &user.id).await?;
        id.auditor
            .record(
                ctx.event(Action::RecoveryCodeUsed, Outcome::Success, &user.tenant_id)
                    .actor(user.id.clone())
                    .detail("remaining", remaining),
            )
            .await?;
    }
    establish_session(&id, &ctx, &headers, &user, method, &return_to).await
}

/// Checks a TOTP code against the user's enabled seed and consumes its time step.
pub(crate) async fn verify_totp(
    id: &Identity,
    user: &User,
    code: &str,
    now_ms: i64,
) -> Result<bool, AppError> {
    let Some(seed) = open_totp_seed(id, user)? else {
        return Ok(false);
    };
    let Some(step) = totp::matching_step(&seed, code, now_ms / 1000) else {
        return Ok(false);
    };
    Ok(users::accept_totp_step(&id.db, &user.id, step).await?)
}

pub(crate) fn totp_context(user_id: &str) -> Vec<u8> {
    format!("totp:{user_id}").into_bytes()
}

pub(crate) fn open_totp_seed(id: &Identity, user: &User) -> Result<Option<Vec<u8>>, AppError> {
    let Some(sealed) = &user.totp_secret else {
        return Ok(None);
    };
    id.sealing
        .open_text(&totp_context(&user.id), sealed)
        .map(Some)
        .map_err(AppError::internal)
}

pub(crate) async fn logout(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, AppError> {
    let clear = end_session(&id, &ctx, &signed_in).await?;
    let mut response = Redirect::to("/login?notice=signed_out").into_response();
    response.headers_mut().append(header::SET_COOKIE, clear);
    Ok(response)
}

/// Ends the request's session and records it; returns the header that clears its cookie. The
/// sign-out page and OpenID Connect RP-initiated logout both end sessions this way.
pub async fn end_session(
    id: &Identity,
    ctx: &RequestContext,
    signed_in: &SignedIn,
) -> Result<http::HeaderValue, AppError> {
    sessions::revoke(&id.db, &signed_in.user.id, &signed_in.session.id_hash).await?;
    id.revocations.account_changed(&signed_in.user.id).await;
    id.auditor
        .record(signed_in.audit(ctx, Action::Logout, Outcome::Success))
        .await?;
    Ok(cookies::clear(cookies::SESSION))
}
