//! OpenID Connect discovery and RFC 8414 metadata: one document, served at both names.

use crate::OAuth;
use crate::clients::{self, AuthMethod};
use axum::Json;
use axum::extract::State;
use palisade_identity::assurance::Acr;
use serde_json::{Value, json};

pub(crate) async fn metadata(State(oauth): State<OAuth>) -> Json<Value> {
    let issuer = &oauth.config().issuer;
    let secret_methods =
        [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost].map(AuthMethod::as_str);
    let mut scopes: Vec<&str> = clients::OIDC_SCOPES.to_vec();
    scopes.extend(oauth.config().scopes.iter().map(String::as_str));
    let mut methods = vec![
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let mtls = oauth.config().mtls_base.as_deref();
    if mtls.is_some() {
        methods.extend(
            [
                AuthMethod::TlsClientAuth,
                AuthMethod::SelfSignedTlsClientAuth,
            ]
            .map(AuthMethod::as_str),
        );
    }
    methods.push("none");
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": clients::GRANTS,
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "end_session_endpoint": format!("{issuer}/oauth/logout"),
        "registration_endpoint": format!("{issuer}/oauth/register"),
        "pushed_authorization_request_endpoint": format!("{issuer}/oauth/par"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [oauth.0.keys.signing_key().alg.as_str()],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "ES256"],
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "scopes_supported": scopes,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "email", "email_verified"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": Acr::ALL.map(Acr::uri),
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    // RFC 8705 §5: where the endpoints are reached with a client certificate.
    if let Some(base) = mtls {
        let at = |path: &str| format!("{base}{path}");
        document["tls_client_certificate_bound_access_tokens"] = true.into();
        document["mtls_endpoint_aliases"] = json!({
            "token_endpoint": at("/oauth/token"),
            "introspection_endpoint": at("/oauth/introspect"),
            "revocation_endpoint": at("/oauth/revoke"),
            "userinfo_endpoint": at("/oauth/userinfo"),
            "pushed_authorization_request_endpoint": at("/oauth/par"),
        });
    }
    Json(document)
}
