//! Passkeys (IDN-6): registration from the account page and sign-in without a password. The
//! ceremonies' challenges are random, stored hashed, bound to their purpose (and, for
//! registration, to the user), single-use and short-lived; the verification itself is in
//! [`crate::webauthn`].

use crate::assurance::SignInMethod;
use crate::context::{RequestContext, SignedIn, safe_return_to};
use crate::csrf::{CsrfForm, CsrfJson};
use crate::login::start_session;
use crate::webauthn::{self, PublicKey};
use crate::{Identity, users};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use data_encoding::{BASE64, BASE64URL_NOPAD};
use http::{HeaderMap, StatusCode, header};
use palisade_audit::{Action, Outcome};
use palisade_http::AppError;
use palisade_store::{Db, StoreError, now_ms};
use serde::Deserialize;
use serde_json::json;
use sqlx::FromRow;

const CEREMONY_TIMEOUT_MS: i64 = 5 * 60_000;
const PURPOSE_REGISTER: &str = "register";
const PURPOSE_LOGIN: &str = "login";

#[derive(Debug, Clone, FromRow)]
pub struct Passkey {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub algorithm: i64,
    pub public_key: String,
    pub sign_count: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Passkey {
    fn key(&self) -> Result<PublicKey, AppError> {
        Ok(PublicKey {
            algorithm: self.algorithm,
            bytes: BASE64
                .decode(self.public_key.as_bytes())
                .map_err(AppError::internal)?,
        })
    }
}

pub async fn list(db: &Db, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, name, algorithm, public_key, sign_count, created_at, last_used_at \
         FROM passkeys WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

async fn find(db: &Db, id: &str) -> Result<Option<Passkey>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, name, algorithm, public_key, sign_count, created_at, last_used_at \
         FROM passkeys WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// Issues a challenge for a ceremony.
async fn new_challenge(
    db: &Db,
    purpose: &str,
    user_id: Option<&str>,
) -> Result<Vec<u8>, StoreError> {
    let challenge = palisade_crypto::random_bytes::<32>().to_vec();
    sqlx::query("INSERT INTO webauthn_challenges (challenge_hash, purpose, user_id, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(palisade_crypto::sha256_hex(&challenge))
        .bind(purpose)
        .bind(user_id)
        .bind(now_ms() + CEREMONY_TIMEOUT_MS)
        .execute(db.pool())
        .await?;
    Ok(challenge)
}

/// Consumes a live challenge of the given purpose; a second use finds nothing.
async fn take_challenge(
    db: &Db,
    challenge: &[u8],
    purpose: &str,
) -> Result<Option<Option<String>>, StoreError> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "DELETE FROM webauthn_challenges WHERE challenge_hash = $1 AND purpose = $2 AND expires_at > $3 RETURNING user_id",
    )
    .bind(palisade_crypto::sha256_hex(challenge))
    .bind(purpose)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(u,)| u))
}

fn decode(field: &str, value: &str) -> Result<Vec<u8>, AppError> {
    BASE64URL_NOPAD
        .decode(value.trim_end_matches('=').as_bytes())
        .map_err(|_| {
            AppError::bad_request("invalid_credential", format!("{field} is not base64url"))
        })
}

fn refused(reason: &webauthn::WebauthnError) -> AppError {
    tracing::info!(reason = %reason, "passkey refused");
    AppError::forbidden("passkey_refused", "The passkey could not be verified.")
}

pub async fn registration_options(
    State(id): State<Identity>,
    signed_in: SignedIn,
    CsrfJson(_): CsrfJson<serde::de::IgnoredAny>,
) -> Result<Response, AppError> {
    let user = &signed_in.user;
    let challenge = new_challenge(&id.db, PURPOSE_REGISTER, Some(&user.id)).await?;
    let exclude: Vec<_> = list(&id.db, &user.id)
        .await?
        .into_iter()
        .map(|p| json!({ "type": "public-key", "id": p.id }))
        .collect();
    let body = json!({ "publicKey": {
        "challenge": BASE64URL_NOPAD.encode(&challenge),
        "rp": { "id": id.relying_party.id, "name": "Palisade" },
        "user": { "id": BASE64URL_NOPAD.encode(user.id.as_bytes()), "name": user.email, "displayName": user.email },
        "pubKeyCredParams": [ { "type": "public-key", "alg": webauthn::ALG_EDDSA }, { "type": "public-key", "alg": webauthn::ALG_ES256 } ],
        "timeout": CEREMONY_TIMEOUT_MS,
        "excludeCredentials": exclude,
        "authenticatorSelection": { "residentKey": "required", "requireResidentKey": true, "userVerification": "required" },
        "attestation": "none",
    }});
    Ok(no_store(Json(body).into_response()))
}

#[derive(Deserialize)]
pub struct RegistrationResponse {
    response: AttestationFields,
}

#[derive(Deserialize)]
struct AttestationFields {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "attestationObject")]
    attestation_object: String,
}

#[derive(Deserialize)]
pub struct RegisterBody {
    #[serde(default)]
    name: String,
    credential: RegistrationResponse,
}

pub async fn register(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    CsrfJson(body): CsrfJson<RegisterBody>,
) -> Result<Response, AppError> {
    let user = &signed_in.user;
    let client_data = decode("clientDataJSON", &body.credential.response.client_data_json)?;
    let attestation = decode(
        "attestationObject",
        &body.credential.response.attestation_object,
    )?;
    let challenge = webauthn::challenge_of(&client_data).map_err(|e| refused(&e))?;
    match take_challenge(&id.db, &challenge, PURPOSE_REGISTER).await? {
        Some(Some(owner)) if owner == user.id => {}
        _ => {
            return Err(refused(&webauthn::WebauthnError(
                "unknown, used or expired challenge",
            )));
        }
    }
    let rp = &id.relying_party;
    let credential = webauthn::verify_registration(rp, &challenge, &client_data, &attestation)
        .map_err(|e| refused(&e))?;
    let credential_id = BASE64URL_NOPAD.encode(&credential.id);
    let name: String = match body.name.trim() {
        "" => format!("Passkey added {}", crate::pages::format_time(now_ms())),
        n => n.chars().take(64).collect(),
    };
    let inserted = sqlx::query(
        "INSERT INTO passkeys (id, user_id, name, algorithm, public_key, sign_count, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&credential_id)
    .bind(&user.id)
    .bind(&name)
    .bind(credential.public_key.algorithm)
    .bind(BASE64.encode(&credential.public_key.bytes))
    .bind(i64::from(credential.sign_count))
    .bind(now_ms())
    .execute(id.db.pool())
    .await
    .map_err(StoreError::from);
    match inserted {
        Ok(_) => {}
        Err(e) if e.is_unique_violation() => {
            return Err(AppError::Conflict {
                code: "passkey_exists",
                message: "This passkey is already registered.".into(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    id.auditor
        .record(
            signed_in
                .audit(&ctx, Action::PasskeyRegistered, Outcome::Success)
                .target(format!("passkey:{credential_id}")),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": credential_id, "name": name })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct RemoveForm {
    passkey: String,
}

pub async fn remove(
    State(id): State<Identity>,
    ctx: RequestContext,
    signed_in: SignedIn,
    CsrfForm(form): CsrfForm<RemoveForm>,
) -> Result<Response, AppError> {
    let r = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
        .bind(&form.passkey)
        .bind(&signed_in.user.id)
        .execute(id.db.pool())
        .await?;
    if r.rows_affected() != 1 {
        return Err(AppError::NotFound);
    }
    id.auditor
        .record(
            signed_in
                .audit(&ctx, Action::PasskeyRemoved, Outcome::Success)
                .target(format!("passkey:{}", form.passkey)),
        )
        .await?;
    Ok(Redirect::to("/account?notice=passkey_removed").into_response())
}

pub async fn login_options(
    State(id): State<Identity>,
    CsrfJson(_): CsrfJson<serde::de::IgnoredAny>,
) -> Result<Response, AppError> {
    let challenge = new_challenge(&id.db, PURPOSE_LOGIN, None).await?;
    let body = json!({ "publicKey": {
        "challenge": BASE64URL_NOPAD.encode(&challenge),
        "rpId": id.relying_party.id,
        "timeout": CEREMONY_TIMEOUT_MS,
        "userVerification": "required",
        "allowCredentials": [],
    }});
    Ok(no_store(Json(body).into_response()))
}

#[derive(Deserialize)]
pub struct AssertionResponse {
    id: String,
    response: AssertionFields,
}

#[derive(Deserialize)]
struct AssertionFields {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "authenticatorData")]
    authenticator_data: String,
    signature: String,
    #[serde(rename = "userHandle", default)]
    user_handle: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginBody {
    credential: AssertionResponse,
    #[serde(default)]
    return_to: String,
}

/// Signs in with a discoverable passkey. A passkey with user verification is itself two factors,
/// so no TOTP step follows.
pub async fn login(
    State(id): State<Identity>,
    ctx: RequestContext,
    headers: HeaderMap,
    CsrfJson(body): CsrfJson<LoginBody>,
) -> Result<Response, AppError> {
    let throttle_key = format!("passkey:{}", body.credential.id);
    if let Some(retry_after) = id.throttle.wait(&throttle_key, ctx.ip).await {
        return Err(AppError::TooManyRequests { retry_after });
    }
    let user = match verify_login(&id, &body.credential).await {
        Ok(user) => user,
        Err(LoginError::Store(e)) => return Err(e.into()),
        Err(LoginError::Refused(e)) => {
            id.throttle.record_failure(&throttle_key, ctx.ip).await;
            id.auditor
                .record(
                    ctx.event(Action::LoginFailed, Outcome::Failure, &id.tenant)
                        .detail("reason", "passkey")
                        .detail("detail", e.0),
                )
                .await?;
            return Err(refused(&e));
        }
    };
    if user.is_locked() {
        return Err(AppError::forbidden(
            "account_locked",
            "This account is locked. Contact an administrator.",
        ));
    }
    let cookie = start_session(&id, &ctx, &headers, &user, SignInMethod::Passkey).await?;
    let mut response =
        no_store(Json(json!({ "redirect": safe_return_to(&body.return_to) })).into_response());
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Why a passkey sign-in did not succeed: the passkey was refused, or the store failed (a
/// 500 of its own, never mistaken for a refused passkey).
enum LoginError {
    Refused(webauthn::WebauthnError),
    Store(StoreError),
}

impl From<webauthn::WebauthnError> for LoginError {
    fn from(e: webauthn::WebauthnError) -> Self {
        LoginError::Refused(e)
    }
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Store(e)
    }
}

impl From<sqlx::Error> for LoginError {
    fn from(e: sqlx::Error) -> Self {
        LoginError::Store(e.into())
    }
}

/// The account an assertion signs in.
async fn verify_login(
    id: &Identity,
    credential: &AssertionResponse,
) -> Result<users::User, LoginError> {
    use webauthn::WebauthnError as E;
    let fields = &credential.response;
    let b64 = |v: &str| {
        BASE64URL_NOPAD
            .decode(v.trim_end_matches('=').as_bytes())
            .map_err(|_| E("a field is not base64url"))
    };
    let client_data = b64(&fields.client_data_json)?;
    let auth_data = b64(&fields.authenticator_data)?;
    let signature = b64(&fields.signature)?;
    let challenge = webauthn::challenge_of(&client_data)?;
    if take_challenge(&id.db, &challenge, PURPOSE_LOGIN)
        .await?
        .is_none()
    {
        return Err(E("unknown, used or expired challenge").into());
    }
    let Some(passkey) = find(&id.db, &credential.id).await? else {
        return Err(E("unknown credential").into());
    };
    if let Some(handle) = &fields.user_handle
        && b64(handle)? != passkey.user_id.as_bytes()
    {
        return Err(E("credential belongs to another user").into());
    }
    let key = passkey.key().map_err(|_| E("stored key unreadable"))?;
    let rp = &id.relying_party;
    let count = webauthn::verify_assertion(
        rp,
        &challenge,
        &client_data,
        &auth_data,
        &signature,
        &key,
        u32::try_from(passkey.sign_count).unwrap_or(u32::MAX),
    )?;
    // Conditional on the old counter, so two concurrent uses of one assertion cannot both land.
    let updated = sqlx::query(
        "UPDATE passkeys SET sign_count = $1, last_used_at = $2 WHERE id = $3 AND sign_count = $4",
    )
    .bind(i64::from(count))
    .bind(now_ms())
    .bind(&passkey.id)
    .bind(passkey.sign_count)
    .execute(id.db.pool())
    .await?;
    if updated.rows_affected() != 1 {
        return Err(E("concurrent use of the credential").into());
    }
    Ok(users::get(&id.db, &passkey.user_id)
        .await?
        .ok_or(E("account no longer exists"))?)
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The script behind the passkey buttons: loaded from this origin (the CSP allows no inline
/// code), it shows the buttons only where the browser supports passkeys.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/passkey.js"),
    )
}
