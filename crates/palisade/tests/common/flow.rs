//! The authorization code flow as a client drives it: a PKCE request, the browser's trip through
//! sign-in and consent, and the back-channel calls that follow.

use super::*;
use data_encoding::BASE64URL_NOPAD;

pub(crate) const REDIRECT: &str = "https://app.example/cb";

pub(crate) fn enc(s: &str) -> String {
    encode_form(&[("x", s)])[2..].to_owned()
}

/// Registers a public client (PKCE only) of the code flow for `scopes`, redirecting to
/// [`REDIRECT`], with `extra` command-line options (more grants, a logout URI); its id.
pub(crate) fn public_app(server: &Server, name: &str, scopes: &[&str], extra: &[&str]) -> String {
    let mut args = vec![
        "--name",
        name,
        "--auth-method",
        "none",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        REDIRECT,
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    args.extend(extra);
    server.register_client(&args)["client_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A confidential web app of the code flow (`client_secret_basic`, `openid`): its registration,
/// secret included.
pub(crate) fn web_app(server: &Server, name: &str) -> serde_json::Value {
    server.register_client(&[
        "--name",
        name,
        "--grant",
        "authorization_code",
        "--scope",
        "openid",
        "--redirect-uri",
        REDIRECT,
    ])
}

/// RFC 9126: pushes `fields` to `/oauth/par`, with Basic credentials when given; the status
/// and the answer.
pub(crate) async fn push(
    server: &Server,
    auth: Option<(&str, &str)>,
    fields: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut req = server
        .http_client()
        .post(format!("{}/oauth/par", server.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(fields));
    if let Some((id, secret)) = auth {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

pub(crate) struct Flow {
    pub client_id: String,
    pub verifier: String,
    pub params: Vec<(String, String)>,
}

impl Flow {
    pub(crate) fn new(client_id: &str, scope: &str) -> Self {
        let verifier = format!(
            "{}{}",
            palisade_crypto::random_token(),
            palisade_crypto::random_token()
        );
        let challenge = BASE64URL_NOPAD.encode(&palisade_crypto::sha256(verifier.as_bytes()));
        let params = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st-42"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            client_id: client_id.to_owned(),
            verifier,
            params,
        }
    }

    pub(crate) fn with(mut self, key: &str, value: Option<&str>) -> Self {
        self.params.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.params.push((key.to_owned(), v.to_owned()));
        }
        self
    }

    pub(crate) fn url(&self) -> String {
        let q: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        format!("/oauth/authorize?{}", q.join("&"))
    }

    pub(crate) fn fields(&self) -> Vec<(&str, &str)> {
        self.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// The query parameters of a redirect to the client.
pub(crate) fn callback(location: &str) -> std::collections::HashMap<String, String> {
    let query = location
        .strip_prefix(REDIRECT)
        .and_then(|q| q.strip_prefix('?'))
        .unwrap_or_else(|| panic!("not a redirect to the client: {location:?}"));
    query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .unwrap();
            (k.to_owned(), v.into_owned())
        })
        .collect()
}

/// Signs in, consents if asked, and returns the code.
pub(crate) async fn code_for(agent: &mut Agent, flow: &Flow) -> String {
    let r = agent.get(&flow.url()).await;
    let location = if r.status == 200 {
        let hidden = r.hidden_fields();
        let mut fields: Vec<(&str, &str)> = hidden
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        fields.push(("decision", "allow"));
        agent
            .post_form("/oauth/authorize/decision", &fields)
            .await
            .location()
            .to_owned()
    } else {
        r.location().to_owned()
    };
    let params = callback(&location);
    // (A request by reference carries its state in the pushed request.)
    if let Some((_, sent)) = flow.params.iter().find(|(k, _)| k == "state") {
        assert_eq!(params.get("state"), Some(sent), "the state comes back");
    }
    params["code"].clone()
}

pub(crate) async fn token_post(
    server: &Server,
    fields: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let r = server
        .http_client()
        .post(format!("{}/oauth/token", server.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(fields))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

pub(crate) async fn exchange(
    server: &Server,
    flow: &Flow,
    code: &str,
    verifier: &str,
) -> (u16, serde_json::Value) {
    token_post(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", &flow.client_id),
        ],
    )
    .await
}

pub(crate) async fn refresh(
    server: &Server,
    client_id: &str,
    token: &str,
) -> (u16, serde_json::Value) {
    token_post(
        server,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
    )
    .await
}

/// Whether introspection, by the resource server `auth`, calls `token` active.
pub(crate) async fn introspect(server: &Server, auth: &(String, String), token: &str) -> bool {
    introspection(server, auth, token).await["active"]
        .as_bool()
        .unwrap()
}

/// The introspection answer about `token` for the resource server `auth`.
pub(crate) async fn introspection(
    server: &Server,
    auth: &(String, String),
    token: &str,
) -> serde_json::Value {
    server
        .http_client()
        .post(format!("{}/oauth/introspect", server.base()))
        .basic_auth(&auth.0, Some(&auth.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode_form(&[("token", token)]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn userinfo(server: &Server, token: &str) -> (u16, serde_json::Value) {
    let r = server
        .http_client()
        .get(format!("{}/oauth/userinfo", server.base()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}
