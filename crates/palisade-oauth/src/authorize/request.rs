//! An authorization request, validated (OAU-1, OAU-2): code flow only, PKCE S256 for every
//! client, exact redirect URIs. Until the client and one of its redirect URIs are established,
//! a refusal is an error page, never a redirect; after, the error goes back to the client with
//! `iss` (RFC 9207).

use crate::OAuth;
use crate::QUERY_VALUE;
use crate::clients::{self, Client, SERVICE_SCOPES};
use crate::error::OAuthError;
use axum::response::{IntoResponse, Redirect, Response};
use palisade_http::AppError;
use palisade_identity::assurance::Acr;
use percent_encoding::utf8_percent_encode;
use std::collections::BTreeMap;

pub(crate) type Params = BTreeMap<String, String>;

/// The parameters the endpoint understands; others are ignored, as RFC 6749 requires.
pub(crate) const KNOWN: &[&str] = &[
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

/// The known parameters of a query string or form.
pub(crate) fn parse(raw: &[u8]) -> Result<Params, AppError> {
    Ok(palisade_http::forms::parse_pairs(raw)?
        .into_iter()
        .filter(|(k, _)| KNOWN.contains(&k.as_str()))
        .collect())
}

/// A request whose client and redirect URI are known: from here on, errors go back to it.
pub(crate) struct Known {
    pub(crate) client: Client,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
}

impl Known {
    pub(crate) fn redirect(&self, issuer: &str, fields: &[(&str, &str)]) -> Response {
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

    pub(crate) fn error(&self, issuer: &str, code: &str, description: &str) -> Response {
        self.redirect(
            issuer,
            &[("error", code), ("error_description", description)],
        )
    }
}

/// A fully validated authorization request.
pub(crate) struct Request {
    pub(crate) known: Known,
    pub(crate) scopes: Vec<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) challenge: String,
    pub(crate) resource: String,
    pub(crate) prompt: Vec<String>,
    pub(crate) max_age: Option<i64>,
    /// The requested `acr_values` this provider knows, in the client's order; values it does
    /// not know are ignored (OpenID Connect §3.1.2.1: a voluntary request).
    pub(crate) acr_values: Vec<Acr>,
    pub(crate) dpop_jkt: Option<String>,
}

impl Request {
    pub(crate) fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// Why a request is refused.
pub(crate) enum Rejection {
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
    pub(crate) fn answer(self, issuer: &str) -> Response {
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
pub(crate) async fn validate(oauth: &OAuth, params: &Params) -> Result<Request, Box<Rejection>> {
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
    if client.redirect_uri(redirect_uri).is_none() {
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
        // A user cannot consent to a service's powers (audit:write): they are not the user's.
        if SERVICE_SCOPES.contains(&s) {
            return back(
                known,
                "invalid_scope",
                "A service scope cannot be granted by a user's consent.",
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
        .is_some_and(|j| !palisade_principal::dpop::is_thumbprint(j))
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
        acr_values: params
            .get("acr_values")
            .map(|v| v.split(' ').filter_map(Acr::parse).collect())
            .unwrap_or_default(),
    })
}
