//! The `openidconnect` crate as a second, independent client of the core flow (OAU-1, OAU-2,
//! OAU-8, TOK-1): discovery with its issuer check, the JWKS, an authorization URL with PKCE and
//! a nonce, the code exchange with client_secret_basic, the ID token verified by the crate
//! (signature against the published keys, issuer, audience, expiry, nonce), and userinfo.

use crate::common::flow::*;
use crate::common::*;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

/// The crate's HTTP client: requests sent with reqwest, trusting only the development CA.
fn transport(
    http: reqwest::Client,
) -> impl Fn(HttpRequest) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>>>>
{
    move |request: HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let answer = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut response = openidconnect::http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            Ok(response
                .body(answer.bytes().await?.to_vec())
                .expect("a response copied from a valid one"))
        })
    }
}

async fn core_flow_with_the_openidconnect_crate(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let issuer = format!("https://localhost:{}", server.https.port());
    let http = transport(server.http_client());
    let app = server.register_client(&[
        "--name",
        "Rust RP",
        "--grant",
        "authorization_code",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--redirect-uri",
        REDIRECT,
    ]);
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &http)
            .await
            .expect("discovery: metadata for exactly this issuer, and its JWKS");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(app["client_id"].as_str().unwrap().to_owned()),
        Some(ClientSecret::new(
            app["client_secret"].as_str().unwrap().to_owned(),
        )),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert!(
        url.as_str()
            .starts_with(&format!("{issuer}/oauth/authorize?"))
    );
    let flow = Flow {
        client_id: app["client_id"].as_str().unwrap().to_owned(),
        verifier: verifier.secret().clone(),
        params: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    };
    assert!(
        flow.params
            .iter()
            .any(|(k, v)| k == "state" && v == state.secret())
    );

    let mut user = server.agent();
    let email = unique_email("openidconnect");
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;
    let code = code_for(&mut user, &flow).await;

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange");
    let id_token = tokens.id_token().expect("an ID token for the openid scope");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("signature, issuer, audience, expiry and nonce check out");
    assert_eq!(claims.issuer().as_str(), issuer);
    assert!(claims.auth_time().is_some());
    // A nonce other than the one sent does not.
    assert!(
        id_token
            .claims(&client.id_token_verifier(), &Nonce::new("another".into()))
            .is_err()
    );

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.email().map(|e| e.as_str()), Some(email.as_str()));
}

on_both_backends!(core_flow_with_the_openidconnect_crate);
