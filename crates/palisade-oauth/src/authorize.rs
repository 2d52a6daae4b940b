//! The authorization endpoint (OAU-1, OAU-2, OAU-6, OAU-7): code flow only, PKCE S256 for every
//! client, exact redirect URIs. A request that does not name a registered client and one of its
//! redirect URIs gets an error page, never a redirect; every other outcome goes back to the
//! client with `iss` (RFC 9207). The user signs in on the identity pages, then consents on a
//! page that lists exactly the requested scopes; remembered consent skips the page unless
//! `prompt=consent`. Codes are bound to the approving browser session.

use crate::OAuth;
use crate::QUERY_VALUE;
use crate::clients::{self, Client};
use crate::codes::{self, CODE_LIFETIME_MS, CodeGrant};
use crate::error::OAuthError;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use palisade_audit::{Action, Outcome};
use palisade_http::AppError;
use palisade_http::error::escape_html;
use palisade_identity::csrf::{Csrf, CsrfForm};
use palisade_identity::{RequestContext, SignedIn};
use palisade_store::now_ms;
use percent_encoding::utf8_percent_encode;
use std::collections::BTreeMap;

type Params = BTreeMap<String, String>;

/// The parameters the endpoint understands; others are ignored, as RFC 6749 requires.
const KNOWN: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "id_token_hint",
    "acr_values",
    "ui_locales",
    "resource",
    "request_uri",
    "request",
    "dpop_jkt",
];

fn parse(raw: &[u8]) -> Result<Params, AppError> {
    Ok(palisade_identity::csrf::parse_pairs(raw)?
        .into_iter()
        .filter(|(k, _)| KNOWN.contains(&k.as_str()))
        .collect())
}

/// Loopback redirect URIs may use any port (RFC 8252 §7.3); every other URI matches exactly.
fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    for host in ["http://127.0.0.1", "http://[::1]"] {
        if let (Some(reg), Some(giv)) = (registered.strip_prefix(host), given.strip_prefix(host)) {
            let without_port = giv
                .strip_prefix(':')
                .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()));
            if reg.starts_with('/') && without_port == Some(reg) {
                return true;
            }
        }
    }
    false
}

/// A request whose client and redirect URI are known: from here on, errors go back to it.
struct Known {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
}

impl Known {
    fn redirect(&self, issuer: &str, fields: &[(&str, &str)]) -> Response {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", issuer));
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
            .collect();
        let sep = if self.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        Redirect::to(&format!("{}{sep}{}", self.redirect_uri, query.join("&"))).into_response()
    }

    fn error(&self, issuer: &str, code: &str, description: &str) -> Response {
        self.redirect(
            issuer,
            &[("error", code), ("error_description", description)],
        )
    }
}

/// A fully validated authorization request.
struct Request {
    known: Known,
    scopes: Vec<String>,
    nonce: Option<String>,
    challenge: String,
    resource: String,
    prompt: Vec<String>,
    max_age: Option<i64>,
    dpop_jkt: Option<String>,
}

/// Why a request is refused.
enum Rejection {
    /// Before the client and its redirect URI are established: an error page, never a redirect.
    Page(String),
    /// After: the error goes back to the client.
    Back {
        known: Box<Known>,
        code: &'static str,
        description: &'static str,
    },
    Store(palisade_store::StoreError),
}

impl From<Rejection> for OAuthError {
    /// For pushed requests, whose errors are answered as JSON.
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Page(m) => OAuthError::InvalidRequest(m),
            Rejection::Back {
                code, description, ..
            } => match code {
                "invalid_scope" => OAuthError::InvalidScope(description.into()),
                "invalid_target" => OAuthError::InvalidTarget(description.into()),
                "unauthorized_client" => OAuthError::UnauthorizedClient(description.into()),
                _ => OAuthError::InvalidRequest(description.into()),
            },
            Rejection::Store(e) => e.into(),
        }
    }
}

impl Rejection {
    fn answer(self, issuer: &str) -> Response {
        match self {
            Rejection::Page(m) => AppError::bad_request("invalid_request", m).into_response(),
            Rejection::Back {
                known,
                code,
                description,
            } => known.error(issuer, code, description),
            Rejection::Store(e) => AppError::from(e).into_response(),
        }
    }
}

/// Checks a request.
async fn validate(oauth: &OAuth, params: &Params) -> Result<Request, Box<Rejection>> {
    let page = |m: &str| Err(Box::new(Rejection::Page(m.to_owned())));
    let Some(client_id) = params.get("client_id") else {
        return page("The request does not name a client.");
    };
    let client = match clients::find(&oauth.0.db, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return page("This application is not registered."),
        Err(e) => return Err(Box::new(Rejection::Store(e))),
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return page("The request does not name a redirect URI.");
    };
    if !client
        .redirect_uris
        .iter()
        .any(|r| redirect_matches(r, redirect_uri))
    {
        return page("The redirect URI is not registered for this application.");
    }
    let known = Known {
        client,
        redirect_uri: redirect_uri.clone(),
        state: params.get("state").cloned(),
    };
    let back = |known: Known, code: &'static str, description: &'static str| {
        Err(Box::new(Rejection::Back {
            known: Box::new(known),
            code,
            description,
        }))
    };
    // Request objects (OpenID Connect §6) are not supported: PAR does their job, safer.
    if params.contains_key("request") {
        return back(
            known,
            "request_not_supported",
            "Request objects are not supported; use pushed authorization requests.",
        );
    }
    if params.contains_key("request_uri") {
        return back(
            known,
            "request_uri_not_supported",
            "Only request_uri values from the pushed authorization request endpoint are accepted.",
        );
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return back(
            known,
            "unsupported_response_type",
            "Only response_type=code is supported.",
        );
    }
    if !known.client.allows_grant("authorization_code") {
        return back(
            known,
            "unauthorized_client",
            "This client may not use the code flow.",
        );
    }
    let challenge = params.get("code_challenge").cloned().unwrap_or_default();
    let challenge_ok = (43..=128).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") || !challenge_ok {
        return back(
            known,
            "invalid_request",
            "PKCE with code_challenge_method=S256 is required.",
        );
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in params
        .get("scope")
        .map(String::as_str)
        .unwrap_or("")
        .split(' ')
    {
        if s.is_empty() || scopes.iter().any(|x| x == s) {
            continue;
        }
        if !known.client.scopes.iter().any(|c| c == s) {
            return back(
                known,
                "invalid_scope",
                "A requested scope is not registered for this client.",
            );
        }
        scopes.push(s.to_owned());
    }
    let resource = match params.get("resource") {
        Some(r) if oauth.config().resources.contains(r) => r.clone(),
        Some(_) => return back(known, "invalid_target", "The resource is not served here."),
        None => oauth.config().resources[0].clone(),
    };
    let prompt: Vec<String> = params
        .get("prompt")
        .map(|p| {
            p.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if prompt
        .iter()
        .any(|p| !["none", "login", "consent", "select_account"].contains(&p.as_str()))
        || (prompt.iter().any(|p| p == "none") && prompt.len() > 1)
    {
        return back(
            known,
            "invalid_request",
            "The prompt parameter is not valid.",
        );
    }
    let max_age = match params.get("max_age") {
        Some(m) => match m.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v),
            _ => {
                return back(
                    known,
                    "invalid_request",
                    "max_age must be a number of seconds.",
                );
            }
        },
        None => None,
    };
    let dpop_jkt = params.get("dpop_jkt").cloned();
    if dpop_jkt
        .as_deref()
        .is_some_and(|j| !crate::dpop::is_thumbprint(j))
    {
        return back(
            known,
            "invalid_request",
            "dpop_jkt must be a JWK SHA-256 thumbprint.",
        );
    }
    Ok(Request {
        known,
        dpop_jkt,
        scopes,
        nonce: params.get("nonce").cloned(),
        challenge,
        resource,
        prompt,
        max_age,
    })
}

/// The sign-in page, coming back to this request afterwards (without `prompt=login`, which the
/// fresh sign-in satisfies).
fn sign_in(params: &Params) -> Response {
    let query: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "prompt")
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect();
    let back = format!("/oauth/authorize?{}", query.join("&"));
    let mut login = format!(
        "/login?return_to={}",
        utf8_percent_encode(&back, QUERY_VALUE)
    );
    if let Some(hint) = params.get("login_hint") {
        login.push_str(&format!(
            "&login_hint={}",
            utf8_percent_encode(hint, QUERY_VALUE)
        ));
    }
    Redirect::to(&login).into_response()
}

pub async fn get(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    csrf: Csrf,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let params = parse(query.unwrap_or_default().as_bytes())?;
    authorize(&oauth, &ctx, csrf, &headers, params).await
}

pub async fn post(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    csrf: Csrf,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    authorize(&oauth, &ctx, csrf, &headers, parse(&body)?).await
}

const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Pushed requests must be used within this (RFC 9126 suggests well under a few minutes).
const PUSHED_LIFETIME_MS: i64 = 60_000;

/// RFC 9126: a client pushes its authorization request over an authenticated back channel and
/// gets a one-time `request_uri` to send the browser with instead of the parameters.
pub async fn par(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    crate::routes::Authenticated {
        params: form,
        client,
    }: crate::routes::Authenticated,
) -> Response {
    let result = async {
        if form.contains_key("request_uri") {
            return Err(OAuthError::InvalidRequest(
                "A pushed request cannot itself name a request_uri.".into(),
            ));
        }
        let mut params: Params = form
            .into_iter()
            .filter(|(k, _)| KNOWN.contains(&k.as_str()))
            .collect();
        params.insert("client_id".into(), client.client_id.clone());
        // RFC 9449 §10.1: a proof sent with the pushed request binds the code to its key.
        if let Some(proof) = oauth
            .dpop_proof(&headers, "POST", "/oauth/par", None)
            .await?
        {
            if params.get("dpop_jkt").is_some_and(|j| *j != proof.jkt) {
                return Err(OAuthError::InvalidDpopProof(
                    "dpop_jkt names another key than the proof's.".into(),
                ));
            }
            params.insert("dpop_jkt".into(), proof.jkt);
        }
        validate(&oauth, &params)
            .await
            .map_err(|r| OAuthError::from(*r))?;
        let secret = palisade_crypto::random_token();
        sqlx::query(
            "INSERT INTO oauth_pushed_requests (request_sha256, client_id, params, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(palisade_crypto::sha256_hex(secret.as_bytes()))
        .bind(&client.client_id)
        .bind(serde_json::to_string(&params).expect("strings serialize"))
        .bind(now_ms() + PUSHED_LIFETIME_MS)
        .execute(oauth.0.db.pool())
        .await
        .map_err(palisade_store::StoreError::from)?;
        let mut response = crate::routes::no_store(serde_json::json!({
            "request_uri": format!("{REQUEST_URI_PREFIX}{secret}"),
            "expires_in": PUSHED_LIFETIME_MS / 1000,
        }));
        *response.status_mut() = http::StatusCode::CREATED;
        Ok(response)
    };
    crate::dpop::with_nonce(&oauth, crate::routes::answer(&ctx, result.await))
}

/// The parameters of a pushed request, consumed: a `request_uri` works once, for its client,
/// within its lifetime.
async fn pushed(oauth: &OAuth, params: &Params) -> Result<Params, AppError> {
    let unknown = || {
        AppError::bad_request(
            "invalid_request",
            "The pushed request is unknown, expired or already used.",
        )
    };
    let secret = params
        .get("request_uri")
        .and_then(|u| u.strip_prefix(REQUEST_URI_PREFIX))
        .ok_or_else(unknown)?;
    let client_id = params.get("client_id").ok_or_else(unknown)?;
    let digest = palisade_crypto::sha256_hex(secret.as_bytes());
    let db = &oauth.0.db;
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT params FROM oauth_pushed_requests \
         WHERE request_sha256 = $1 AND client_id = $2 AND expires_at > $3",
    )
    .bind(&digest)
    .bind(client_id)
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await
    .map_err(palisade_store::StoreError::from)?;
    let (stored,) = row.ok_or_else(unknown)?;
    let consumed = sqlx::query("DELETE FROM oauth_pushed_requests WHERE request_sha256 = $1")
        .bind(&digest)
        .execute(db.pool())
        .await
        .map_err(palisade_store::StoreError::from)?;
    if consumed.rows_affected() != 1 {
        return Err(unknown());
    }
    serde_json::from_str(&stored).map_err(|_| unknown())
}

async fn authorize(
    oauth: &OAuth,
    ctx: &RequestContext,
    csrf: Csrf,
    headers: &HeaderMap,
    params: Params,
) -> Result<Response, AppError> {
    let pushed_uri = params
        .get("request_uri")
        .is_some_and(|u| u.starts_with(REQUEST_URI_PREFIX));
    let params = if pushed_uri {
        pushed(oauth, &params).await?
    } else {
        params
    };
    let request = match validate(oauth, &params).await {
        Ok(r) => r,
        Err(rejection) => return Ok(rejection.answer(&oauth.config().issuer)),
    };
    let issuer = &oauth.config().issuer;
    let signed_in = SignedIn::from_headers(&oauth.0.identity, headers).await?;
    let none = request.prompt.iter().any(|p| p == "none");
    let Some(signed_in) = signed_in else {
        if none {
            return Ok(request
                .known
                .error(issuer, "login_required", "The user is not signed in."));
        }
        return Ok(sign_in(&params));
    };
    let too_old = request
        .max_age
        .is_some_and(|max| now_ms() - signed_in.session.auth_time > max * 1000);
    // An ID token hint names who the client expects: anyone else must sign in as them.
    let someone_else = match params.get("id_token_hint") {
        Some(hint) => {
            let Some(claims) = oauth.verify_id_token_hint(hint) else {
                return Ok(request.known.error(
                    issuer,
                    "invalid_request",
                    "The id_token_hint is not an ID token issued here.",
                ));
            };
            claims.get("sub").and_then(|s| s.as_str()) != Some(signed_in.user.id.as_str())
        }
        None => false,
    };
    // A client signs in accounts of its own organisation only (IDN-8): anyone else must sign
    // in as one of them.
    let other_tenant = signed_in.user.tenant_id != request.known.client.tenant_id;
    if request.prompt.iter().any(|p| p == "login") || too_old || someone_else || other_tenant {
        if none {
            return Ok(request.known.error(
                issuer,
                "login_required",
                "A fresh sign-in is required.",
            ));
        }
        return Ok(sign_in(&params));
    }
    let granted = codes::consented(
        &oauth.0.db,
        &signed_in.user.id,
        &request.known.client.client_id,
    )
    .await?;
    let covered = request.scopes.iter().all(|s| granted.contains(s));
    if covered && !request.prompt.iter().any(|p| p == "consent") {
        return issue_code(oauth, ctx, &request, &signed_in).await;
    }
    if none {
        return Ok(request
            .known
            .error(issuer, "consent_required", "The user has not consented."));
    }
    let mut page = (csrf.clone(), consent_page(&request, &params, &csrf.token)).into_response();
    palisade_http::headers::allow_form_target(&mut page, &request.known.redirect_uri);
    Ok(page)
}

fn describe(scope: &str) -> &str {
    match scope {
        "openid" => "Confirm who you are (your account identifier)",
        "profile" => "See your profile",
        "email" => "See your email address",
        "address" => "See your postal address",
        "phone" => "See your phone number",
        "offline_access" => "Stay connected when you are not using it",
        other => other,
    }
}

fn consent_page(request: &Request, params: &Params, csrf: &str) -> Html<String> {
    let client = escape_html(&request.known.client.name);
    let scopes: String = if request.scopes.is_empty() {
        "<li>No access to your data</li>".into()
    } else {
        request
            .scopes
            .iter()
            .map(|s| format!("<li>{}</li>", escape_html(describe(s))))
            .collect()
    };
    let hidden: String = params
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape_html(k),
                escape_html(v)
            )
        })
        .collect();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Allow {client}?</title><link rel="stylesheet" href="/static/palisade.css"></head>
<body><main class="card"><h1>Allow {client} to access your account?</h1>
<p>{client} asks to:</p><ul id="scopes">{scopes}</ul>
<form method="post" action="/oauth/authorize/decision">
<input type="hidden" name="csrf" value="{csrf}">{hidden}
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form></main></body></html>"#,
        csrf = escape_html(csrf),
    ))
}

/// The consent page's answer: the request is validated again from scratch (nothing the page
/// carried is trusted more than the original request was).
pub async fn decision(
    State(oauth): State<OAuth>,
    ctx: RequestContext,
    headers: HeaderMap,
    CsrfForm(mut form): CsrfForm<Params>,
) -> Result<Response, AppError> {
    let decision = form.remove("decision").unwrap_or_default();
    form.retain(|k, _| KNOWN.contains(&k.as_str()));
    let request = match validate(&oauth, &form).await {
        Ok(r) => r,
        Err(rejection) => return Ok(rejection.answer(&oauth.config().issuer)),
    };
    let Some(signed_in) = SignedIn::from_headers(&oauth.0.identity, &headers).await? else {
        return Ok(sign_in(&form));
    };
    let issuer = &oauth.config().issuer;
    let client_id = request.known.client.client_id.clone();
    if decision != "allow" {
        oauth
            .0
            .auditor
            .record(
                ctx.event(
                    Action::ConsentDenied,
                    Outcome::Failure,
                    &signed_in.user.tenant_id,
                )
                .actor(signed_in.user.id.clone())
                .client(client_id),
            )
            .await?;
        return Ok(request
            .known
            .error(issuer, "access_denied", "The user denied the request."));
    }
    codes::remember_consent(&oauth.0.db, &signed_in.user.id, &client_id, &request.scopes).await?;
    oauth
        .0
        .auditor
        .record(
            ctx.event(
                Action::ConsentGranted,
                Outcome::Success,
                &signed_in.user.tenant_id,
            )
            .actor(signed_in.user.id.clone())
            .client(client_id)
            .detail("scope", request.scopes.join(" ")),
        )
        .await?;
    issue_code(&oauth, &ctx, &request, &signed_in).await
}

async fn issue_code(
    oauth: &OAuth,
    ctx: &RequestContext,
    request: &Request,
    signed_in: &SignedIn,
) -> Result<Response, AppError> {
    if signed_in.user.tenant_id != request.known.client.tenant_id {
        return Ok(request.known.error(
            &oauth.config().issuer,
            "access_denied",
            "This application belongs to another organisation.",
        ));
    }
    let now = now_ms();
    let grant = CodeGrant {
        grant_id: palisade_store::new_id(),
        client_id: request.known.client.client_id.clone(),
        user_id: signed_in.user.id.clone(),
        session_id: signed_in.session.id_hash.clone(),
        redirect_uri: request.known.redirect_uri.clone(),
        scope: request.scopes.join(" "),
        resource: request.resource.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.challenge.clone(),
        auth_time: signed_in.session.auth_time,
        amr: signed_in.session.amr.clone(),
        expires_at: now + CODE_LIFETIME_MS,
        dpop_jkt: request.dpop_jkt.clone(),
    };
    let code = codes::issue(&oauth.0.db, &grant).await?;
    oauth
        .0
        .auditor
        .record(
            ctx.event(
                Action::CodeIssued,
                Outcome::Success,
                &signed_in.user.tenant_id,
            )
            .actor(signed_in.user.id.clone())
            .client(grant.client_id.clone())
            .detail("scope", grant.scope.as_str()),
        )
        .await?;
    Ok(request
        .known
        .redirect(&oauth.config().issuer, &[("code", &code)]))
}

#[cfg(test)]
mod tests {
    use super::redirect_matches;

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        let app = "https://app.example/cb";
        assert!(redirect_matches(app, app));
        for other in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cbx",
            "https://app.example/cb/../evil",
            "https://app.example.evil.com/cb",
            "https://APP.example/cb",
            "http://app.example/cb",
        ] {
            assert!(!redirect_matches(app, other), "{other}");
        }
        let native = "http://127.0.0.1/callback";
        assert!(redirect_matches(native, "http://127.0.0.1:51004/callback"));
        assert!(!redirect_matches(
            native,
            "http://127.0.0.1:51004/callback/x"
        ));
        assert!(!redirect_matches(
            native,
            "http://127.0.0.1:51004@evil.example/callback"
        ));
        assert!(!redirect_matches(
            native,
            "http://127.0.0.1.evil.example/callback"
        ));
    }
}
