//! SOC-4: the OpenAPI description matches the behaviour. schemathesis (from PyPI; the test
//! command installs it) generates requests for every documented operation, valid and invalid,
//! with a real access token, and checks the answers: never a server error, only documented
//! statuses and content types, bodies matching their schemas, invalid input refused, and the
//! token actually required.

use crate::common::flow::*;
use crate::common::social::*;
use crate::common::*;
use serde_json::json;

async fn the_api_matches_its_description(backend: Backend) {
    let st = installed_tool("PALISADE_TEST_SCHEMATHESIS", "/opt/schemathesis/bin/st");
    // The fuzzer sends thousands of requests with one token: lift the allowances.
    let server = Server::start_with(
        Options::on(backend)
            .env("PALISADE_API__REQUESTS_PER_MINUTE", "1000000")
            .env("PALISADE_API__NETWORK_REQUESTS_PER_MINUTE", "1000000"),
    )
    .await;
    let scopes = ["social:read", "social:write", "messages", "moderation"];
    let client_id = &public_app(&server, "Fuzzer", &scopes, &[]);
    let fuzzer = member(&server, client_id, "fuzzer", &scopes.join(" ")).await;
    let friend = member(&server, client_id, "friend", &scopes.join(" ")).await;
    // A moderator, so that hiding a post can succeed too.
    server.set_role(&fuzzer.email, "moderator");
    // Objects to find: the ids of the paths are fixed to them, the rest is generated.
    let (status, post) = call(
        &server,
        &fuzzer.token,
        "POST",
        "/api/posts",
        Some(json!({"body": "hello", "visibility": "public"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, conversation) = call(
        &server,
        &fuzzer.token,
        "POST",
        "/api/conversations",
        Some(json!({"with": [friend.id]})),
    )
    .await;
    assert_eq!(status, 201);
    let config = server.dir.path().join("schemathesis.toml");
    let fixed = |regex: &str, id: &serde_json::Value| {
        format!(
            "[[operations]]\ninclude-path-regex = '{regex}'\nparameters = {{ \"path.id\" = {id} }}\n"
        )
    };
    std::fs::write(
        &config,
        [
            fixed("^/api/profiles/", &json!(friend.id)),
            fixed("^/api/posts/", &post["id"]),
            fixed("^/api/conversations/", &conversation["id"]),
        ]
        .concat(),
    )
    .unwrap();

    let ca = server.dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let output = tokio::process::Command::new(st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", server.base()))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection,ignored_auth,\
             unsupported_method",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--workers",
            "2",
            "--no-color",
        ])
        .arg("--tls-verify")
        .arg(&ca)
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", fuzzer.token))
        .current_dir(server.dir.path())
        .output()
        .await
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found failures");
    // Every documented operation was exercised.
    let openapi = server.fetch_json("/openapi.json").await;
    let operations: usize = openapi["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(
        report.contains(&format!("{operations} passed")),
        "not every one of the {operations} operations passed"
    );
    server.assert_logs_free_of(&[&fuzzer.token]).await;
}

on_both_backends!(the_api_matches_its_description);
