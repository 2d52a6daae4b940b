//! Members of the social API as its tests play them: an account signed in through a public
//! client, holding an access token for some scopes, and JSON calls made with it.

use super::flow::{Flow, code_for, exchange};
use super::*;
use serde_json::Value;

pub(crate) struct Member {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// A new account, signed in, with a token for `scope` from `client_id`; its id from `/api/me`.
pub(crate) async fn member(server: &Server, client_id: &str, tag: &str, scope: &str) -> Member {
    member_signed_in(server, client_id, tag, scope).await.0
}

/// [`member`], with the browser that signed in, to ask for more tokens with [`token_for`].
pub(crate) async fn member_signed_in(
    server: &Server,
    client_id: &str,
    tag: &str,
    scope: &str,
) -> (Member, Agent) {
    let mut agent = server.agent();
    let email = unique_email(tag);
    agent.sign_up(&email, PASSWORD).await;
    agent.log_in(&email, PASSWORD).await;
    let token = token_for(server, &mut agent, client_id, scope).await;
    let (_, me) = call(server, &token, "GET", "/api/me", None).await;
    let member = Member {
        id: me["subject"].as_str().unwrap().to_owned(),
        email,
        token,
    };
    (member, agent)
}

/// An access token for `scope` from `client_id`, for the account signed in on `agent`.
pub(crate) async fn token_for(
    server: &Server,
    agent: &mut Agent,
    client_id: &str,
    scope: &str,
) -> String {
    let flow = Flow::new(client_id, scope);
    let code = code_for(agent, &flow).await;
    let (status, tokens) = exchange(server, &flow, &code, &flow.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// `METHOD path` with `token` and an optional JSON body; the status and the JSON answer.
pub(crate) async fn call(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", server.base());
    let http = server.http_client();
    let mut req = match method {
        "GET" => http.get(url),
        "POST" => http.post(url),
        "PUT" => http.put(url),
        "DELETE" => http.delete(url),
        other => panic!("{other}"),
    }
    .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// A conversation `starter` starts with `with`; its id.
pub(crate) async fn start_conversation(server: &Server, starter: &Member, with: &[&str]) -> String {
    let (status, started) = call(
        server,
        &starter.token,
        "POST",
        "/api/conversations",
        Some(serde_json::json!({ "with": with })),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    started["id"].as_str().unwrap().to_owned()
}
