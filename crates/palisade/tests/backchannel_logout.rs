//! OpenID Connect back-channel logout (OAU-8) over real HTTP: a client that registered a
//! `backchannel_logout_uri` receives a signed logout token naming the user and the session
//! whenever that session ends — signing out in the browser, the session revoked from another
//! one, a password change, "log out everywhere", or an administrator locking the account from
//! the CLI (another process: the note travels through the database). A client that does not
//! answer is tried again, across a restart of the server; a client with a logout URI that was
//! not signed in through the session hears nothing.

use crate::common::flow::*;
use crate::common::*;
use axum::extract::State;
use axum::http::StatusCode;
use palisade_jose::verify::{Expectations, verify};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client's back-channel logout endpoint: refuses the deliveries it is told to (to show
/// retries), then keeps every logout token it is sent.
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<u32>>,
    refusals: Arc<Mutex<u32>>,
    tokens: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn refuse(&self, deliveries: u32) {
        *self.refusals.lock().unwrap() = deliveries;
    }

    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }

    /// The claims of the `n`th logout token received, once it is.
    async fn token(&self, n: usize) -> serde_json::Value {
        let token = eventually(Duration::from_secs(30), "a logout token", || async {
            self.tokens.lock().unwrap().get(n).cloned()
        })
        .await;
        jwt_claims(&token)
    }
}

async fn receive(
    State(r): State<Receiver>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> StatusCode {
    *r.calls.lock().unwrap() += 1;
    let mut refusals = r.refusals.lock().unwrap();
    if *refusals > 0 {
        *refusals -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.tokens.lock().unwrap().push(form["logout_token"].clone());
    StatusCode::OK
}

/// A relying party's back-channel endpoint: not a Palisade route, so outside its inventory.
#[allow(clippy::disallowed_methods)]
async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/logout", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/logout", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

/// Options letting deliveries reach a receiver on loopback: the egress policy must allow it
/// explicitly.
fn reaching_loopback(options: Options) -> Options {
    options.env("PALISADE_EGRESS__ALLOWED_NETWORKS", r#"["127.0.0.1/32"]"#)
}

/// A receiver, and a public client named `name` that registered it as its logout URI.
async fn listening_app(server: &Server, name: &str) -> (Receiver, String) {
    let (receiver, logout_uri) = start_receiver().await;
    let client_id = public_app(
        server,
        name,
        &["openid"],
        &["--backchannel-logout-uri", &logout_uri],
    );
    (receiver, client_id)
}

/// Runs the code flow for `client_id` in the agent's session; the ID token's claims.
async fn id_token_of(server: &Server, user: &mut Agent, client_id: &str) -> serde_json::Value {
    let flow = Flow::new(client_id, "openid");
    let code = code_for(user, &flow).await;
    let (status, tokens) = exchange(server, &flow, &code, &flow.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    jwt_claims(tokens["id_token"].as_str().unwrap())
}

async fn ended_sessions_log_clients_out(backend: Backend) {
    let server = Server::start_with(reaching_loopback(Options::on(backend))).await;
    let issuer = format!("https://localhost:{}", server.https.port());
    let (receiver, listening) = listening_app(&server, "Listening app").await;
    receiver.refuse(1);
    let silent = public_app(&server, "Silent app", &["openid"], &[]);
    let metadata = server.fetch_json("/.well-known/openid-configuration").await;
    assert_eq!(metadata["backchannel_logout_supported"], true);

    let email = unique_email("bcl");
    let mut user = server.agent();
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;
    let id_token = id_token_of(&server, &mut user, &listening).await;
    id_token_of(&server, &mut user, &silent).await;

    // Signing out: the listening client is told, after one refused delivery.
    user.log_out().await;
    let keys = server.published_keys().await;
    let token = eventually(Duration::from_secs(20), "a logout token", || async {
        receiver.tokens.lock().unwrap().first().cloned()
    })
    .await;
    let claims = verify(
        &token,
        &keys,
        &Expectations {
            typ: "logout+jwt",
            issuer: &issuer,
            audience: Some(&listening),
            now: palisade_store::now_ms() / 1000,
            skew_seconds: 5,
        },
    )
    .expect("a logout token signed by a published key, for the listening client");
    assert_eq!(claims["sub"], id_token["sub"]);
    assert_eq!(
        claims["sid"], id_token["sid"],
        "names the session the ID token named"
    );
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none(), "not an ID token");
    assert!(claims["jti"].is_string());
    assert_eq!(receiver.calls(), 2, "retried after the refusal");

    // A new session, then the administrator locks the account from the CLI.
    user.log_in(&email, PASSWORD).await;
    let second = id_token_of(&server, &mut user, &listening).await;
    assert_ne!(second["sid"], id_token["sid"]);
    let out = server.cli(&["admin", "lock-user", "--email", &email]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = eventually(Duration::from_secs(20), "a second logout token", || async {
        receiver.tokens.lock().unwrap().get(1).cloned()
    })
    .await;
    assert_eq!(jwt_claims(&token)["sid"], second["sid"]);
    // Once answered, nothing is left to deliver, and only the listening client was addressed.
    let db = server.db().await;
    eventually(Duration::from_secs(20), "the deliveries done", || async {
        let states: Vec<(String,)> =
            sqlx::query_as("SELECT state FROM jobs WHERE kind = 'oauth.backchannel_logout'")
                .fetch_all(db.pool())
                .await
                .unwrap();
        (states.len() == 2 && states.iter().all(|(s,)| s == "done")).then_some(())
    })
    .await;
    assert_eq!(receiver.tokens.lock().unwrap().len(), 2);
}

on_both_backends!(ended_sessions_log_clients_out);

/// Every other way a session ends reaches the clients signed in through it: revoked from
/// another session, ended by a password change, ended by "log out everywhere". A client that
/// also has a logout URI but was signed in only through someone else's session hears nothing
/// of it, and hears its own user's logout.
async fn every_way_a_session_ends_is_told(backend: Backend) {
    let server = Server::start_with(reaching_loopback(Options::on(backend))).await;
    let (receiver, listening) = listening_app(&server, "Listening app").await;
    let (bystander_receiver, bystander_app) = listening_app(&server, "Bystander app").await;
    let mut other = server.agent();
    let other_email = unique_email("other");
    other.sign_up(&other_email, PASSWORD).await;
    other.log_in(&other_email, PASSWORD).await;
    let others_session = id_token_of(&server, &mut other, &bystander_app).await;

    let email = unique_email("ends");
    let mut desk = server.agent();
    desk.sign_up(&email, PASSWORD).await;
    desk.log_in(&email, PASSWORD).await;
    let mut phone = server.agent();
    let mut password = PASSWORD.to_owned();
    let mut told = 0;
    for (how, end) in [
        ("revoked from another session", "revoke"),
        ("a password change", "password"),
        ("log out everywhere", "everywhere"),
    ] {
        phone.log_in(&email, &password).await;
        let signed_in = id_token_of(&server, &mut phone, &listening).await;
        let r = match end {
            "revoke" => {
                let handle = palisade_crypto::sha256_hex(phone.session().unwrap().as_bytes());
                desk.post_form("/account/sessions/revoke", &[("session", &handle)])
                    .await
            }
            "password" => {
                let new = "a passphrase for the phone";
                let r = desk
                    .post_form(
                        "/account/password",
                        &[("current_password", &password), ("new_password", new)],
                    )
                    .await;
                password = new.to_owned();
                r
            }
            _ => desk.post_form("/account/sessions/revoke-others", &[]).await,
        };
        assert_eq!(r.status, 303, "{how}: {}", r.body);
        let claims = receiver.token(told).await;
        told += 1;
        assert_eq!(
            (&claims["sub"], &claims["sid"]),
            (&signed_in["sub"], &signed_in["sid"]),
            "{how}"
        );
        assert_eq!(claims["aud"], listening.as_str(), "{how}");
        assert_eq!(phone.get("/account").await.status, 303, "{how}: signed out");
    }
    assert_eq!(
        bystander_receiver.calls(),
        0,
        "nothing for a client not in those sessions"
    );
    other.log_out().await;
    let claims = bystander_receiver.token(0).await;
    assert_eq!(claims["sid"], others_session["sid"]);
    assert_eq!(receiver.tokens.lock().unwrap().len(), told);
}

on_both_backends!(every_way_a_session_ends_is_told);

/// A delivery the client refused is still made after the server restarts: the job is durable.
#[tokio::test]
async fn a_pending_logout_survives_a_restart() {
    let mut server = Server::start_with(reaching_loopback(Options::default())).await;
    let (receiver, listening) = listening_app(&server, "Listening app").await;
    receiver.refuse(u32::MAX);
    let email = unique_email("restart");
    let mut user = server.agent();
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;
    let id_token = id_token_of(&server, &mut user, &listening).await;
    user.log_out().await;
    eventually(Duration::from_secs(20), "a refused delivery", || async {
        (receiver.calls() >= 1).then_some(())
    })
    .await;

    server.restart().await;
    receiver.refuse(0);
    let claims = receiver.token(0).await;
    assert_eq!(claims["sid"], id_token["sid"]);
    assert_eq!(
        claims["iss"],
        format!("https://localhost:{}", server.https.port()),
        "delivered by the restarted server"
    );
}

/// SCL-3: a registered logout URI cannot aim the server at its own network. Without an egress
/// allowance, deliveries to a loopback address — written as an address or as a name that
/// resolves to one — are refused before a connection is made, and say so in the job's error.
async fn logout_uris_cannot_reach_the_servers_network(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let (receiver, logout_uri) = start_receiver().await;
    let by_name = logout_uri.replace("127.0.0.1", "localhost");
    let by_address = public_app(
        &server,
        "By address",
        &["openid"],
        &["--backchannel-logout-uri", &logout_uri],
    );
    let by_dns = public_app(
        &server,
        "By name",
        &["openid"],
        &["--backchannel-logout-uri", &by_name],
    );
    let email = unique_email("ssrf");
    let mut user = server.agent();
    user.sign_up(&email, PASSWORD).await;
    user.log_in(&email, PASSWORD).await;
    id_token_of(&server, &mut user, &by_address).await;
    id_token_of(&server, &mut user, &by_dns).await;
    user.log_out().await;
    let db = server.db().await;
    let errors = eventually(Duration::from_secs(20), "both deliveries tried", || async {
        let rows: Vec<(Option<String>,)> = sqlx::query_as(
            "SELECT last_error FROM jobs WHERE kind = 'oauth.backchannel_logout' \
             AND last_error IS NOT NULL",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        (rows.len() == 2).then_some(rows)
    })
    .await;
    for (error,) in errors {
        let error = error.unwrap();
        assert!(
            error.contains("refused by the egress policy"),
            "the delivery failed for the policy, not the network: {error}"
        );
    }
    assert_eq!(receiver.calls(), 0, "nothing reached the receiver");
}

on_both_backends!(logout_uris_cannot_reach_the_servers_network);
