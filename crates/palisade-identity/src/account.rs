//! The account page (IDN-7) and what can be done from it: sessions, password, two-step
//! verification, recovery codes.

use crate::context::{RequestContext, SignedIn};
use crate::csrf::{Csrf, CsrfForm};
use crate::login::{check_password_rules, open_totp_seed, totp_context};
use crate::pages::{self, format_time};
use crate::users;
use crate::{Identity, recovery, sessions, totp};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use palisade_audit::{Action, Outcome, SecurityEvent};
use palisade_crypto::Secret;
use palisade_http::AppError;
use palisade_http::input::Query;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct AccountQuery {
    #[serde(default)]
    notice: String,
}

fn account_notice(key: &str) -> Option<&'static str> {
    match key {
        "password_changed" => {
            Some("Your password was changed and your other sessions were signed out.")
        }
        "session_revoked" => Some("The session was signed out."),
        "sessions_revoked" => Some("All other sessions were signed out."),
        "mfa_disabled" => Some("Two-step verification is off."),
        "passkey_added" => Some("Your passkey was added. You can now sign in with it."),
        "passkey_removed" => Some("The passkey was removed."),
        _ => None,
    }
}

pub(crate) async fn account_page(
    State(id): State<Identity>,
    signed_in: SignedIn,
    csrf: Csrf,
    Query(q): Query<AccountQuery>,
) -> Result<Response, AppError> {
    render_account(
        &id,
        &signed_in,
        &csrf,
        account_notice(&q.notice),
        None,
        StatusCode::OK,
    )
    .await
}

async fn render_account(
    id: &Identity,
    signed_in: &SignedIn,
    csrf: &Csrf,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let user = &signed_in.user;
    let sessions = sessions::list(&id.db, &user.id)
        .await?
        .into_iter()
        .map(|s| pages::SessionRow {
            current: s.id_hash == signed_in.session.id_hash,
            handle: s.id_hash,
            user_agent: s.user_agent,
            ip: s.ip,
            created: format_time(s.created_at),
            last_seen: format_time(s.last_seen_at),
        })
        .collect();
    let recovery_remaining = if user.has_totp() {
        recovery::remaining(&id.db, &user.id).await?
    } else {
        0
    };
    let page = pages::Account {
        csrf: &csrf.token,
        signed_in: true,
        email: &user.email,
        notice,
        error,
        sessions,
        totp_enabled: user.has_totp(),
        recovery_remaining,
        passkeys: crate::passkeys::list(&id.db, &user.id)
            .await?
            .into_iter()
            .map(|p| pages::PasskeyRow {
                id: p.id,
                name: p.name,
                created: format_time(p.created_at),
                last_used: p
                    .last_used_at
                    .map(format_time)
                    .unwrap_or_else(|| "never".into()),
            })
            .collect(),
        min_password_length: id.config.min_password_length,
    };
    Ok((csrf.clone(), pages::render(status, &page)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    current_password: Secret<String>,
    new_password: Secret<String>,
}

/// Changes the password after re-checking the current one (throttled like a login), raises the
/// revocation epoch and signs out every other session.
pub(crate) async fn change_password(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let user = &signed_in.user;
    if let Err(message) = check_password_rules(&id.config, form.new_password.expose(), &user.email)
    {
        return render_account(
            &id,
            &signed_in,
            &csrf,
            None,
            Some(&message),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    if let Some(refusal) =
        check_current_password(&id, &ctx, &signed_in, &csrf, form.current_password).await?
    {
        return Ok(refusal);
    }
    let hash = id.hasher.hash(form.new_password).await?;
    users::set_password(&id.db, &user.id, &hash).await?;
    let ended = sessions::revoke_others(&id.db, &user.id, &signed_in.session.id_hash).await?;
    // After both changes: what rechecks on hearing it sees the new password's epoch and the
    // ended sessions.
    id.revocations.account_changed(&user.id).await;
    record_then_redirect(
        &id,
        signed_in
            .audit(&ctx, Action::PasswordChanged, Outcome::Success)
            .detail("sessions_ended", ended),
        "/account?notice=password_changed",
    )
    .await
}

/// Records the event of a completed action, then shows where it leads.
async fn record_then_redirect(
    id: &Identity,
    event: SecurityEvent,
    to: &str,
) -> Result<Response, AppError> {
    id.auditor.record(event).await?;
    Ok(Redirect::to(to).into_response())
}

/// Re-checks the signed-in user's password, under the same throttle as a login: the account
/// page must not become an unthrottled password oracle for whoever holds a stolen session.
/// Returns the account page with an error when the password is wrong.
async fn check_current_password(
    id: &Identity,
    ctx: &RequestContext,
    signed_in: &SignedIn,
    csrf: &Csrf,
    password: Secret<String>,
) -> Result<Option<Response>, AppError> {
    let account = crate::throttle::account_key(
        &signed_in.user.tenant_id,
        &signed_in.user.email.to_lowercase(),
    );
    if let Some(retry_after) = id.throttle.wait(&account, ctx.ip).await {
        return Err(AppError::TooManyRequests { retry_after });
    }
    let stored = Some(signed_in.user.password_hash.clone());
    if id.hasher.verify(password, stored).await? {
        id.throttle.record_success(&account).await;
        return Ok(None);
    }
    id.throttle.record_failure(&account, ctx.ip).await;
    let page = render_account(
        id,
        signed_in,
        csrf,
        None,
        Some("Your current password is incorrect."),
        StatusCode::BAD_REQUEST,
    )
    .await?;
    Ok(Some(page))
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    session: String,
}

pub(crate) async fn revoke_session(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    CsrfForm(form): CsrfForm<RevokeForm>,
) -> Result<Response, AppError> {
    if !sessions::revoke(&id.db, &signed_in.user.id, &form.session).await? {
        return Err(AppError::NotFound);
    }
    // Its open connections (a real-time socket) close on every node.
    id.revocations.account_changed(&signed_in.user.id).await;
    record_then_redirect(
        &id,
        signed_in
            .audit(&ctx, Action::SessionRevoked, Outcome::Success)
            .target(format!(
                "session:{}",
                &form.session[..form.session.len().min(16)]
            )),
        "/account?notice=session_revoked",
    )
    .await
}

pub(crate) async fn revoke_other_sessions(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, AppError> {
    let ended =
        sessions::revoke_others(&id.db, &signed_in.user.id, &signed_in.session.id_hash).await?;
    // "Log out everywhere" also ends every access token issued to the account's apps (TOK-4).
    users::raise_epoch(&id.db, &signed_in.user.id).await?;
    id.revocations.account_changed(&signed_in.user.id).await;
    record_then_redirect(
        &id,
        signed_in
            .audit(&ctx, Action::SessionRevoked, Outcome::Success)
            .detail("sessions_ended", ended),
        "/account?notice=sessions_revoked",
    )
    .await
}

/// Starts TOTP enrolment with a fresh seed, stored sealed and pending until confirmed.
pub(crate) async fn totp_page(
    State(id): State<Identity>,
    signed_in: SignedIn,
    csrf: Csrf,
) -> Result<Response, AppError> {
    let user = &signed_in.user;
    if user.has_totp() {
        return Ok(Redirect::to("/account").into_response());
    }
    let seed = totp::new_secret();
    let sealed = id.sealing.seal_text(&totp_context(&user.id), &seed);
    users::set_pending_totp(&id.db, &user.id, &sealed).await?;
    render_enrolment(&id, &signed_in, &csrf, &seed, None, StatusCode::OK)
}

fn render_enrolment(
    id: &Identity,
    signed_in: &SignedIn,
    csrf: &Csrf,
    seed: &[u8],
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let secret = totp::encode_secret(seed);
    let uri = totp::provisioning_uri(&id.config.totp_issuer, &signed_in.user.email, seed);
    let page = pages::TotpEnroll {
        csrf: &csrf.token,
        signed_in: true,
        error,
        secret: &secret,
        uri: &uri,
    };
    Ok((csrf.clone(), pages::render(status, &page)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    code: Secret<String>,
}

/// Confirms enrolment with a first code, turns TOTP on and shows the recovery codes once.
pub(crate) async fn totp_enable(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let user = &signed_in.user;
    if user.has_totp() {
        return Ok(Redirect::to("/account").into_response());
    }
    let Some(seed) = open_totp_seed(&id, user)? else {
        return Ok(Redirect::to("/account/mfa/totp").into_response());
    };
    let now = palisade_store::now_ms() / 1000;
    let step = totp::matching_step(&seed, form.code.expose(), now);
    let enabled = match step {
        Some(step) => users::enable_totp(&id.db, &user.id, step).await?,
        None => false,
    };
    if !enabled {
        return render_enrolment(
            &id,
            &signed_in,
            &csrf,
            &seed,
            Some("That code is not valid. Check the time on your device and try the next code."),
            StatusCode::BAD_REQUEST,
        );
    }
    let codes = recovery::generate();
    recovery::replace(&id.db, &user.id, &codes).await?;
    id.auditor
        .record(
            signed_in
                .audit(&ctx, Action::MfaEnabled, Outcome::Success)
                .detail("method", "totp"),
        )
        .await?;
    let page = pages::RecoveryCodes {
        csrf: &csrf.token,
        signed_in: true,
        codes: &codes,
    };
    Ok(pages::render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub(crate) struct PasswordOnlyForm {
    password: Secret<String>,
}

pub(crate) async fn totp_disable(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    csrf: Csrf,
    CsrfForm(form): CsrfForm<PasswordOnlyForm>,
) -> Result<Response, AppError> {
    if let Some(refusal) =
        check_current_password(&id, &ctx, &signed_in, &csrf, form.password).await?
    {
        return Ok(refusal);
    }
    let user = &signed_in.user;
    users::disable_totp(&id.db, &user.id).await?;
    record_then_redirect(
        &id,
        signed_in
            .audit(&ctx, Action::MfaDisabled, Outcome::Success)
            .detail("method", "totp"),
        "/account?notice=mfa_disabled",
    )
    .await
}

pub(crate) async fn regenerate_recovery_codes(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    csrf: Csrf,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, AppError> {
    if !signed_in.user.has_totp() {
        return Err(AppError::bad_request(
            "mfa_not_enabled",
            "Turn on two-step verification first.",
        ));
    }
    let codes = recovery::generate();
    recovery::replace(&id.db, &signed_in.user.id, &codes).await?;
    id.auditor
        .record(signed_in.audit(&ctx, Action::RecoveryCodesRegenerated, Outcome::Success))
        .await?;
    let page = pages::RecoveryCodes {
        csrf: &csrf.token,
        signed_in: true,
        codes: &codes,
    };
    Ok(pages::render(StatusCode::OK, &page))
}
