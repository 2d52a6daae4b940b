//! Identity over real HTTPS (IDN-1..7, TOK-6): sign-up, login, TOTP, recovery codes, sessions,
//! enumeration resistance, brute-force throttling and CSRF, each attack performed and refused.

use crate::common;

use crate::common::factors::totp_code;
use crate::common::*;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// IDN-1, IDN-4, IDN-6, TOK-6: the whole life of an account with TOTP and recovery codes, and
/// afterwards no secret of it in the logs.
async fn sign_up_login_totp_recovery_and_no_secrets_in_logs(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let email = unique_email("alice");
    a.sign_up(&email, PASSWORD).await;

    let r = a.log_in(&email, PASSWORD).await;
    assert_eq!((r.status, r.location()), (303, "/account"));
    let first_session = a.session().cloned().expect("session cookie");
    let account = a.get("/account").await;
    assert_eq!(account.status, 200);
    assert_eq!(
        account.element_text("account-email").as_deref(),
        Some(email.as_str())
    );

    // Enrol TOTP.
    let enrol = a.get("/account/mfa/totp").await;
    assert_eq!(enrol.status, 200);
    let secret = enrol.element_text("totp-secret").expect("secret shown");
    let wrong = a
        .post_form("/account/mfa/totp", &[("code", "000000")])
        .await;
    assert_eq!(wrong.status, 400, "a wrong enrolment code is refused");
    let r = a
        .post_form("/account/mfa/totp", &[("code", &totp_code(&secret, 0))])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let codes: Vec<String> = r
        .body
        .split("<li>")
        .skip(1)
        .map(|s| s.split("</li>").next().unwrap().trim().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes are shown once");
    a.log_out().await;
    assert_eq!(a.get("/account").await.status, 303, "signed out");

    // Password alone now leads to the second step, not to a session.
    let r = a.log_in(&email, PASSWORD).await;
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with("/login/mfa"), "{}", r.location());
    assert!(a.session().is_none(), "no session before the second factor");
    let mfa_cookie = a
        .cookies
        .get("__Host-palisade-mfa")
        .cloned()
        .expect("challenge cookie");
    assert_eq!(a.get("/login/mfa").await.status, 200);
    let next_code = totp_code(&secret, 1);
    let r = a.post_form("/login/mfa", &[("code", &next_code)]).await;
    assert_eq!((r.status, r.location()), (303, "/account"), "{}", r.body);
    assert!(
        !a.cookies.contains_key("__Host-palisade-mfa"),
        "challenge cookie cleared"
    );
    a.log_out().await;

    // The same TOTP code a second time is refused (IDN-6 replay protection) ...
    a.log_in(&email, PASSWORD).await;
    let r = a.post_form("/login/mfa", &[("code", &next_code)]).await;
    assert_eq!(r.status, 401, "a TOTP code works once");
    assert!(a.session().is_none());
    // ... while a recovery code works, exactly once.
    let r = a.post_form("/login/mfa", &[("code", &codes[0])]).await;
    assert_eq!((r.status, r.location()), (303, "/account"));
    a.log_out().await;
    a.log_in(&email, PASSWORD).await;
    let r = a.post_form("/login/mfa", &[("code", &codes[0])]).await;
    assert_eq!(r.status, 401, "a recovery code works once");
    let r = a.post_form("/login/mfa", &[("code", &codes[1])]).await;
    assert_eq!(r.status, 303);
    let last_session = a.session().cloned().unwrap();

    // Every identity action was recorded, with its actor.
    let events = server.events().await;
    let actions: Vec<&str> = events.iter().map(|(a, _, _)| a.as_str()).collect();
    for expected in [
        "identity.sign_up",
        "identity.login.succeeded",
        "identity.mfa.enabled",
        "identity.logout",
        "identity.mfa.failed",
        "identity.recovery_code.used",
    ] {
        assert!(
            actions.contains(&expected),
            "missing {expected} in {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "identity.mfa.failed")
            .count(),
        2
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "identity.recovery_code.used")
            .count(),
        2
    );
    let sign_up = events.iter().find(|e| e.0 == "identity.sign_up").unwrap();
    let user_id = sign_up.2.clone().expect("sign-up names the new account");
    assert!(
        events
            .iter()
            .filter(|e| e.0.starts_with("identity.") && e.0 != "identity.sign_up")
            .all(|e| e.2.as_deref() == Some(&user_id))
    );

    let mut secrets = vec![
        PASSWORD.to_owned(),
        first_session,
        last_session,
        mfa_cookie,
        secret.clone(),
        a.csrf(),
        next_code,
    ];
    secrets.extend(codes.iter().cloned());
    secrets.extend(codes.iter().map(|c| c.replace('-', "")));
    server
        .assert_logs_free_of(&secrets.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
}

/// IDN-2: an unknown address and a wrong password get the same status and the same page.
async fn unknown_user_and_wrong_password_are_indistinguishable(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let email = unique_email("bob");
    a.sign_up(&email, PASSWORD).await;
    let wrong_password = a.log_in(&email, "not the password at all").await;
    let unknown_user = a
        .log_in(&unique_email("nobody"), "not the password at all")
        .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.body, unknown_user.body);
    assert!(
        wrong_password
            .body
            .contains("Incorrect email address or password.")
    );

    // Signing up again with a taken address looks exactly like a new sign-up: the same status,
    // the same redirect, the same body, the same headers apart from their per-request values.
    let sign_up = async |address: &str| {
        let mut b = server.agent();
        b.get("/signup").await;
        b.post_form(
            "/signup",
            &[("email", address), ("password", "another long password")],
        )
        .await
    };
    let (taken, fresh) = (sign_up(&email).await, sign_up(&unique_email("fresh")).await);
    assert_eq!(
        (taken.status, taken.location()),
        (303, "/login?notice=signed_up")
    );
    assert_eq!(
        (taken.status, taken.location()),
        (fresh.status, fresh.location())
    );
    assert_eq!(taken.body, fresh.body);
    let names = |r: &Response| {
        let mut names: Vec<_> = r.headers.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        names
    };
    assert_eq!(names(&taken), names(&fresh));
    // And nothing changed for the owner of the address.
    assert_eq!(a.log_in(&email, PASSWORD).await.status, 303);
    let mut c = server.agent();
    assert_eq!(c.log_in(&email, "another long password").await.status, 401);
}

/// IDN-3: 20 rapid wrong passwords end in 429 with Retry-After; during the back-off even the
/// right password is refused; another account from another address is unaffected.
async fn brute_force_is_throttled_per_account(backend: Backend) {
    // A long base delay keeps the back-off in force for the whole test, whatever the machine's speed.
    let server = Server::start_with(
        Options::on(backend).env("PALISADE_IDENTITY__THROTTLE_BASE_DELAY_MS", "60000"),
    )
    .await;
    let mut setup = server.agent();
    let victim = unique_email("victim");
    let bystander = unique_email("bystander");
    setup.sign_up(&victim, PASSWORD).await;
    setup.sign_up(&bystander, PASSWORD).await;

    let mut attacker = server.agent();
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = attacker.log_in(&victim, &format!("guess number {i}")).await;
        if r.status == 429 {
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry >= 1);
        }
        statuses.push(r.status);
    }
    assert_eq!(
        &statuses[..6],
        &[401; 6],
        "five free attempts, then the sixth failure starts the back-off"
    );
    assert!(statuses[6..].iter().all(|&s| s == 429), "{statuses:?}");
    let r = attacker.log_in(&victim, PASSWORD).await;
    assert_eq!(
        r.status, 429,
        "the right password is refused during the back-off"
    );

    let mut other = server.agent_from("127.0.0.2".parse::<IpAddr>().unwrap());
    let r = other.log_in(&bystander, PASSWORD).await;
    assert_eq!(
        (r.status, r.location()),
        (303, "/account"),
        "another account from another address"
    );

    let events = server.events().await;
    assert!(
        events
            .iter()
            .any(|(a, _, _)| a == "identity.login.throttled")
    );
}

/// IDN-3: password hashing is bounded. With one slot and no queue, a login arriving while
/// another is being hashed is answered `503` with `Retry-After` at once instead of waiting; the
/// first completes, and the next login is served. (Expensive argon2 parameters make a hash last
/// seconds, so the second request surely arrives during it.)
#[tokio::test]
async fn password_hashing_sheds_past_its_slots() {
    let server = Server::start_with(
        Options::default()
            .env("PALISADE_IDENTITY__HASH_CONCURRENCY", "1")
            .env("PALISADE_IDENTITY__HASH_QUEUE", "0")
            .env("PALISADE_IDENTITY__ARGON2_MEMORY_KIB", "8192")
            .env("PALISADE_IDENTITY__ARGON2_ITERATIONS", "300"),
    )
    .await;
    let email = unique_email("gated");
    let mut first = server.agent();
    first.sign_up(&email, PASSWORD).await;
    let mut second = server.agent();
    second.get("/login").await;
    let hashing = "palisade_identity_password_hashes_in_flight 1";
    let (held, shed) = tokio::join!(first.log_in(&email, PASSWORD), async {
        eventually(Duration::from_secs(30), "a hash in progress", || async {
            server
                .metrics()
                .await
                .lines()
                .any(|l| l == hashing)
                .then_some(())
        })
        .await;
        second
            .post_form("/login", &[("email", &email), ("password", PASSWORD)])
            .await
    });
    assert_eq!(
        (shed.status, shed.headers["retry-after"].to_str().unwrap()),
        (503, "1")
    );
    assert_eq!((held.status, held.location()), (303, "/account"));
    let after = second
        .post_form("/login", &[("email", &email), ("password", PASSWORD)])
        .await;
    assert_eq!((after.status, after.location()), (303, "/account"));
}

/// IDN-3: one address guessing across many accounts is throttled too, and only that address.
async fn brute_force_is_throttled_per_address(backend: Backend) {
    let server = Server::start_with(
        Options::on(backend)
            .env("PALISADE_IDENTITY__THROTTLE_BASE_DELAY_MS", "60000")
            .env("PALISADE_IDENTITY__THROTTLE_IP_FREE_ATTEMPTS", "8"),
    )
    .await;
    let mut setup = server.agent_from("127.0.0.3".parse::<IpAddr>().unwrap());
    let target = unique_email("target");
    setup.sign_up(&target, PASSWORD).await;
    let mut attacker = server.agent();
    for i in 0..9 {
        let r = attacker
            .log_in(&unique_email(&format!("spray{i}")), "password spraying")
            .await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = attacker.log_in(&target, PASSWORD).await;
    assert_eq!(r.status, 429, "the address is backing off");
    let r = setup.log_in(&target, PASSWORD).await;
    assert_eq!(r.status, 303, "other addresses are not affected");
}

/// IDN-5: forms refuse cross-site submissions and submissions without the right token.
async fn cross_site_posts_are_refused(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let mut a = server.agent();
    let email = unique_email("carol");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    let body = |csrf: &str| {
        encode_form(&[
            ("csrf", csrf),
            ("current_password", PASSWORD),
            ("new_password", "attacker chosen pw"),
        ])
    };

    // No token at all, as a cross-site form would send.
    let r = a
        .post_raw(
            "/account/password",
            "application/x-www-form-urlencoded",
            encode_form(&[
                ("current_password", PASSWORD),
                ("new_password", "attacker chosen pw"),
            ])
            .into_bytes(),
            false,
        )
        .await;
    assert_eq!(r.status, 403);
    // A made-up token.
    let r = a
        .post_raw(
            "/account/password",
            "application/x-www-form-urlencoded",
            body("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").into_bytes(),
            false,
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("did not come from this site"), "{}", r.body);
    // The right token, but the browser says the request comes from another site.
    let csrf = a.csrf();
    let client = server.http_client();
    let cookies = format!(
        "__Host-palisade-csrf={csrf}; __Host-palisade-session={}",
        a.session().unwrap()
    );
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = client
            .post(format!("{}/account/password", server.base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookies)
            .header(name, value)
            .body(body(&csrf))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
    }
    // The password is unchanged: the real one still works.
    let mut b = server.agent();
    assert_eq!(b.log_in(&email, PASSWORD).await.status, 303);
}

/// IDN-4: cookie attributes, and a session revoked from the account page stops working at once.
async fn session_cookies_and_revocation(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let email = unique_email("dave");
    let mut laptop = server.agent();
    laptop.sign_up(&email, PASSWORD).await;
    let r = laptop.log_in(&email, PASSWORD).await;
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-palisade-session="))
        .expect("session cookie set");
    let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(
        data_encoding::BASE64URL_NOPAD
            .decode(value.as_bytes())
            .unwrap()
            .len(),
        32,
        "256-bit id"
    );
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age="] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    assert!(
        !cookie.contains("Domain="),
        "__Host- cookies carry no Domain"
    );

    let mut phone = server.agent();
    phone.log_in(&email, PASSWORD).await;
    assert_eq!(phone.get("/account").await.status, 200);

    // The laptop sees both sessions and revokes the phone's.
    let page = laptop.get("/account").await;
    let handles: Vec<&str> = page
        .body
        .split("name=\"session\" value=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(
        handles.len(),
        1,
        "one other session can be revoked (not the current one)"
    );
    let r = laptop
        .post_form("/account/sessions/revoke", &[("session", handles[0])])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (303, "/account?notice=session_revoked")
    );
    let r = phone.get("/account").await;
    assert_eq!(
        r.status, 303,
        "the revoked session is refused on its very next request"
    );
    assert!(r.location().starts_with("/login"));
    assert_eq!(
        laptop.get("/account").await.status,
        200,
        "the revoking session lives on"
    );

    // A handle of another user's session revokes nothing.
    let mut mallory = server.agent();
    let m = unique_email("mallory");
    mallory.sign_up(&m, PASSWORD).await;
    mallory.log_in(&m, PASSWORD).await;
    let laptop_handle = palisade_crypto::sha256_hex(laptop.session().unwrap().as_bytes());
    let r = mallory
        .post_form("/account/sessions/revoke", &[("session", &laptop_handle)])
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(laptop.get("/account").await.status, 200);
}

/// IDN-1, TOK-4: changing the password needs the current one, ends the other sessions and
/// raises the revocation epoch.
async fn password_change_ends_other_sessions(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let email = unique_email("erin");
    let mut a = server.agent();
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    let mut b = server.agent();
    b.log_in(&email, PASSWORD).await;

    let r = a
        .post_form(
            "/account/password",
            &[
                ("current_password", "wrong current pw"),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Your current password is incorrect."));
    let r = a
        .post_form(
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .post_form(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (303, "/account?notice=password_changed")
    );
    assert_eq!(a.get("/account").await.status, 200);
    assert_eq!(b.get("/account").await.status, 303, "other sessions end");
    let mut c = server.agent();
    assert_eq!(
        c.log_in(&email, PASSWORD).await.status,
        401,
        "old password refused"
    );
    assert_eq!(c.log_in(&email, "a brand new passphrase").await.status, 303);

    let db = server.db().await;
    let (epoch,): (i64,) = sqlx::query_as("SELECT revocation_epoch FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(epoch, 1);
}

/// The leaf commands of `palisade`, from its own help: `admin create-user`, `keys list`, …
fn commands() -> BTreeSet<String> {
    let listed = |args: &[&str]| -> Vec<String> {
        let out = std::process::Command::new(binary())
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .filter(|c| c != "help")
            .collect()
    };
    let mut leaves = BTreeSet::new();
    for top in listed(&[]) {
        let subs = listed(&[&top]);
        if subs.is_empty() {
            leaves.insert(top);
        } else {
            leaves.extend(subs.into_iter().map(|sub| format!("{top} {sub}")));
        }
    }
    leaves
}

/// PLT-1: every command prints its result as one JSON document on stdout and its logs on
/// stderr (`Server::cli` checks that contract on each call). The commands are read from the
/// binary's help, so a new one is called here or fails the test; the long-running servers and
/// `config check` (which prints TOML, the configuration's own format) are left out.
#[tokio::test]
async fn every_command_prints_one_json_document() {
    let server = Server::start().await;
    let email = unique_email("cli");
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", said(&out));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    };
    let who = ["--email", email.as_str()];
    let mut called = BTreeSet::new();
    let mut run = |command: &str, args: &[&str], input: &str| {
        called.insert(command.to_owned());
        let words: Vec<&str> = command.split(' ').chain(args.iter().copied()).collect();
        json(server.cli_with_input(&words, input))
    };
    run("migrate", &[], "");
    run(
        "admin create-tenant",
        &["--id", "cli-tenant", "--name", "CLI"],
        "",
    );
    run("admin create-user", &who, &format!("{PASSWORD}\n"));
    run("admin lock-user", &who, "");
    run("admin unlock-user", &who, "");
    run(
        "admin set-role",
        &[&who[..], &["--role", "moderator"]].concat(),
        "",
    );
    run("admin erase-audit-trail", &who, "");
    let export = server.dir.path().join("cli-export");
    run("audit export", &[export.to_str().unwrap()], "");
    run("audit verify", &[], "");
    let keys = run("keys list", &[], "");
    run("keys rotate", &["--force"], "");
    let retired = keys.as_array().unwrap()[0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    run("keys revoke", &[&retired], "");
    let client = run(
        "clients create",
        &[
            "--name",
            "CLI",
            "--grant",
            "client_credentials",
            "--scope",
            "social:read",
        ],
        "",
    );
    run("clients list", &[], "");
    run(
        "clients delete",
        &[client["client_id"].as_str().unwrap()],
        "",
    );
    // The internal CA, for a trust domain this server was not started with.
    let ca_config = server.dir.path().join("ca.toml");
    std::fs::write(&ca_config, "[ca]\ntrust_domain = \"cli.test\"\n").unwrap();
    let with_ca = ["--config", ca_config.to_str().unwrap()];
    let created = run("ca init", &with_ca, "");
    assert_eq!(created["trust_domain"], "cli.test");
    let token = run(
        "ca join-token",
        &[&with_ca[..], &["--spiffe-id", "spiffe://cli.test/svc/a"]].concat(),
        "",
    );
    assert_eq!(token["spiffe_id"], "spiffe://cli.test/svc/a");
    run("ca list", &with_ca, "");
    let bundle = run("ca bundle", &with_ca, "");
    assert_eq!(bundle["bundle"], created["bundle"]);
    run("ca rotate", &with_ca, "");
    // ACME certificates, for a directory nobody contacts here.
    let acme_config = server.dir.path().join("acme.toml");
    std::fs::write(
        &acme_config,
        "[tls.acme]\ndirectory = \"https://acme.invalid/dir\"\nidentifiers = [\"cli.test\"]\n",
    )
    .unwrap();
    let with_acme = ["--config", acme_config.to_str().unwrap()];
    run("certs list", &with_acme, "");
    let status = run("certs status", &with_acme, "");
    assert_eq!(status["name"], "cli.test");
    run("certs renew", &with_acme, "");

    // The scanners and verify-release need targets and releases of their own: scan.rs and
    // release.rs read their JSON.
    let left_out: BTreeSet<String> = [
        "serve",
        "witness",
        "config check",
        "scan jwt",
        "scan tls",
        "verify-release",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let all: BTreeSet<String> = commands().difference(&left_out).cloned().collect();
    assert_eq!(called, all, "every command is called");
}

/// The admin CLI creates and locks accounts; a locked account cannot sign in and its sessions end.
async fn admin_cli_creates_and_locks_accounts(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let email = unique_email("frank");
    let run = |args: &[&str], stdin: &str| server.cli_with_input(args, stdin);
    let out = run(
        &["admin", "create-user", "--email", &email],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &["admin", "create-user", "--email", &email],
        &format!("{PASSWORD}\n"),
    );
    assert!(!out.status.success(), "duplicate refused");

    let mut a = server.agent();
    assert_eq!(a.log_in(&email, PASSWORD).await.status, 303);
    let out = run(&["admin", "lock-user", "--email", &email], "");
    assert!(out.status.success());
    assert_eq!(
        a.get("/account").await.status,
        303,
        "a locked account's session stops working"
    );
    let mut b = server.agent();
    assert_eq!(b.log_in(&email, PASSWORD).await.status, 403);
    run(&["admin", "unlock-user", "--email", &email], "");
    assert_eq!(b.log_in(&email, PASSWORD).await.status, 303);

    // AUD-1: the CLI's events reach the server's Merkle log as queued jobs, in order.
    let db = server.db().await;
    let logged = eventually(
        std::time::Duration::from_secs(30),
        "the admin events in the log",
        || async {
            let (pending,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'audit.append' AND state <> 'done'",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
                "SELECT action, log_index FROM security_events \
                 WHERE action LIKE 'admin.%' ORDER BY log_index",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            (pending == 0 && rows.len() == 2).then_some(rows)
        },
    )
    .await;
    assert_eq!(logged[0].0, "admin.account.locked");
    assert_eq!(logged[1].0, "admin.account.unlocked");
    let (entry,): (String,) = sqlx::query_as("SELECT entry FROM audit_leaves WHERE idx = $1")
        .bind(logged[0].1.unwrap())
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(entry.contains("admin.account.locked"), "{entry}");
    // AUD-2: the searchable row names the account acted upon; the leaf names it only by its
    // keyed pseudonym.
    let (target, actor): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT target, actor FROM security_events WHERE log_index = $1")
            .bind(logged[0].1.unwrap())
            .fetch_one(db.pool())
            .await
            .unwrap();
    let (user_id,): (String,) = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!((target.as_deref(), actor), (Some(user_id.as_str()), None));
    let leaf: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert!(leaf["target"].is_string() && leaf["target"] != user_id.as_str());
    assert!(!entry.contains(&user_id) && !entry.contains(&email));
}

/// IDN-4, IDN-6, OAU-4: session ids, second-step challenges, recovery codes and client secrets
/// are stored as their SHA-256 digests — the very digest, so the secret itself is nowhere in
/// the row and the lookup by digest is what authenticates.
async fn secrets_are_stored_as_their_sha256(backend: Backend) {
    let server = Server::start_with(Options::on(backend)).await;
    let db = server.db().await;
    let column = async |sql: &str, bind: &str| -> Vec<String> {
        let mut rows: Vec<String> = sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_all(db.pool())
            .await
            .unwrap();
        rows.sort();
        rows
    };
    let sha256 = |s: &str| palisade_crypto::sha256_hex(s.as_bytes());
    let mut a = server.agent();
    let email = unique_email("digests");
    a.sign_up(&email, PASSWORD).await;
    a.log_in(&email, PASSWORD).await;
    let user_id = column("SELECT id FROM users WHERE email = $1", &email)
        .await
        .remove(0);
    let sessions = "SELECT id_hash FROM sessions WHERE user_id = $1";
    let session = a.session().unwrap().clone();
    assert_eq!(column(sessions, &user_id).await, vec![sha256(&session)]);

    let (_, codes) = common::factors::enrol_totp(&mut a).await;
    let mut expected: Vec<String> = codes
        .iter()
        .map(|code| sha256(&format!("{user_id}:{}", code.replace('-', ""))))
        .collect();
    expected.sort();
    let recovery = "SELECT code_hash FROM recovery_codes WHERE user_id = $1";
    assert_eq!(column(recovery, &user_id).await, expected);

    a.log_out().await;
    a.log_in(&email, PASSWORD).await;
    let challenge = a.cookies.get("__Host-palisade-mfa").unwrap().clone();
    let challenges = "SELECT id_hash FROM mfa_challenges WHERE user_id = $1";
    assert_eq!(column(challenges, &user_id).await, vec![sha256(&challenge)]);

    let client = server.register_client(&[
        "--name",
        "digest",
        "--grant",
        "client_credentials",
        "--scope",
        "social:read",
    ]);
    let stored = column(
        "SELECT secret_sha256 FROM oauth_clients WHERE client_id = $1",
        client["client_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        stored,
        vec![sha256(client["client_secret"].as_str().unwrap())]
    );
}

on_both_backends!(
    secrets_are_stored_as_their_sha256,
    sign_up_login_totp_recovery_and_no_secrets_in_logs,
    unknown_user_and_wrong_password_are_indistinguishable,
    brute_force_is_throttled_per_account,
    brute_force_is_throttled_per_address,
    cross_site_posts_are_refused,
    session_cookies_and_revocation,
    password_change_ends_other_sessions,
    admin_cli_creates_and_locks_accounts,
);
