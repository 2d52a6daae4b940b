//! Passkeys over real HTTPS (IDN-6): registration and password-less sign-in with a software
//! authenticator, and the attacks a relying party must refuse: replayed ceremonies, phishing
//! origins, forged signatures, removed credentials.

use crate::common::factors::{assertion, challenge, registration};
use crate::common::*;
use data_encoding::BASE64URL_NOPAD as B64;
use palisade_identity::webauthn::testing::{PRESENT_ONLY, SoftKey, UV};
use serde_json::{Value, json};

/// Builds a forged or tampered sign-in body from the authenticator and a fresh challenge.
type Attack<'a> = dyn Fn(&mut SoftKey, &[u8]) -> Value + 'a;

async fn passkeys_register_sign_in_and_refuse_attacks(backend: Backend) {
    // Every refused assertion below counts against the credential's throttle; leave room for
    // all of them so each attack is refused by verification, not by back-off.
    let server = Server::start_with(
        Options::on(backend).env("PALISADE_IDENTITY__THROTTLE_ACCOUNT_FREE_ATTEMPTS", "20"),
    )
    .await;
    let origin = format!("https://localhost:{}", server.https.port());
    let email = unique_email("pk");
    let mut owner = server.agent();
    owner.sign_up(&email, PASSWORD).await;
    owner.log_in(&email, PASSWORD).await;

    // Registration.
    let options = owner
        .post_json("/account/passkeys/options", &json!({}))
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let o = options.json();
    assert_eq!(o["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(
        o["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(options.headers["cache-control"], "no-store");
    let user_handle = o["publicKey"]["user"]["id"].as_str().unwrap().to_owned();
    let mut key = SoftKey::new();
    let kid = B64.encode(&key.id);

    // A registration signed for a phishing origin or without user verification is refused,
    // and the challenge it used is gone either way.
    let c = challenge(&options);
    let (cd, att) = key.register("localhost", "https://evil.example", &c, UV);
    assert_eq!(
        owner
            .post_json("/account/passkeys", &registration(&key, cd, att))
            .await
            .status,
        403
    );
    let c = challenge(
        &owner
            .post_json("/account/passkeys/options", &json!({}))
            .await,
    );
    let (cd, att) = key.register("localhost", &origin, &c, PRESENT_ONLY);
    assert_eq!(
        owner
            .post_json("/account/passkeys", &registration(&key, cd, att))
            .await
            .status,
        403
    );

    let c = challenge(
        &owner
            .post_json("/account/passkeys/options", &json!({}))
            .await,
    );
    let (cd, att) = key.register("localhost", &origin, &c, UV);
    let body = registration(&key, cd, att);
    let r = owner.post_json("/account/passkeys", &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["name"], "test key");
    assert_eq!(
        owner.post_json("/account/passkeys", &body).await.status,
        403,
        "a ceremony cannot be replayed"
    );
    let page = owner.get("/account").await;
    assert!(page.body.contains("test key"));

    // A registration needs a session, and the token of this site.
    let mut stranger = server.agent();
    stranger.get("/login").await;
    assert_eq!(
        stranger
            .post_json("/account/passkeys/options", &json!({}))
            .await
            .status,
        401
    );

    // Password-less sign-in from a fresh browser.
    let mut laptop = server.agent();
    laptop.get("/login").await;
    let c = challenge(&laptop.post_json("/login/passkey/options", &json!({})).await);
    let signed = key.assert("localhost", &origin, &c);
    let body = assertion(&kid, signed, &user_handle);
    let r = laptop.post_json("/login/passkey", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["redirect"], "/account");
    assert!(laptop.session().is_some());
    assert_eq!(laptop.get("/account").await.status, 200);
    let mut replay = server.agent();
    replay.get("/login").await;
    assert_eq!(
        replay.post_json("/login/passkey", &body).await.status,
        403,
        "an assertion works once"
    );
    assert!(replay.session().is_none());

    // Phishing origin, wrong RP, forged signature, stale counter, foreign user handle.
    let attacks: Vec<(&str, Box<Attack>)> = vec![
        (
            "phishing origin",
            Box::new(|k, c| {
                assertion(
                    &kid,
                    k.assert("localhost", "https://evil.example", c),
                    &user_handle,
                )
            }),
        ),
        (
            "other RP",
            Box::new(|k, c| assertion(&kid, k.assert("evil.example", &origin, c), &user_handle)),
        ),
        (
            "forged signature",
            Box::new(|k, c| {
                let (cd, ad, mut sig) = k.assert("localhost", &origin, c);
                let n = sig.len() - 1;
                sig[n] ^= 0x01;
                assertion(&kid, (cd, ad, sig), &user_handle)
            }),
        ),
        (
            "cloned authenticator",
            Box::new(|k, c| {
                k.count = 0;
                assertion(&kid, k.assert("localhost", &origin, c), &user_handle)
            }),
        ),
        (
            "someone else's user handle",
            Box::new(|k, c| {
                assertion(
                    &kid,
                    k.assert("localhost", &origin, c),
                    &B64.encode(b"another-user"),
                )
            }),
        ),
    ];
    for (name, attack) in attacks {
        let mut a = server.agent();
        a.get("/login").await;
        let c = challenge(&a.post_json("/login/passkey/options", &json!({})).await);
        let r = a.post_json("/login/passkey", &attack(&mut key, &c)).await;
        assert_eq!(r.status, 403, "{name}: {}", r.body);
        assert_eq!(r.json()["error"], "passkey_refused");
        assert!(a.session().is_none(), "{name}");
    }

    // Removed passkeys stop working.
    let page = owner.get("/account").await;
    let id = B64.encode(&key.id);
    assert!(page.body.contains(&id));
    let mut other = server.agent();
    let other_email = unique_email("other");
    other.sign_up(&other_email, PASSWORD).await;
    other.log_in(&other_email, PASSWORD).await;
    assert_eq!(
        other
            .post_form("/account/passkeys/remove", &[("passkey", &id)])
            .await
            .status,
        404,
        "only the owner can remove it"
    );
    let r = owner
        .post_form("/account/passkeys/remove", &[("passkey", &id)])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (303, "/account?notice=passkey_removed")
    );
    let mut a = server.agent();
    a.get("/login").await;
    let c = challenge(&a.post_json("/login/passkey/options", &json!({})).await);
    let r = a
        .post_json(
            "/login/passkey",
            &assertion(&kid, key.assert("localhost", &origin, &c), &user_handle),
        )
        .await;
    assert_eq!(r.status, 403);

    let events = server.events().await;
    let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert!(actions.contains(&"identity.passkey.registered"));
    assert!(actions.contains(&"identity.passkey.removed"));
    assert!(
        actions
            .iter()
            .filter(|a| **a == "identity.login.failed")
            .count()
            >= 6
    );
}

on_both_backends!(passkeys_register_sign_in_and_refuse_attacks);
