//! The route inventory (RES-6) and the attacks generated from it: every route the server
//! answers is declared public or protected; every protected one refuses a caller without
//! credentials; every route of the API refuses a token without its scope (RES-2), and no route
//! that names an object lets one user reach another's by editing the id in the path (RES-3).
//! The cases come from the inventory, so a new route is covered, or fails here, by itself.

use crate::common::flow::*;
use crate::common::social::*;
use crate::common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const ADMIN_KEY: &str = "admin-key-for-the-route-inventory-0123456789";

/// The routes anyone may call, reviewed one by one. A new public route fails the inventory test
/// until it is added here.
const PUBLIC: &[&str] = &[
    "GET /",
    "GET /.well-known/jwks.json",
    "GET /.well-known/oauth-authorization-server",
    "GET /.well-known/openid-configuration",
    "GET /audit/checkpoint",
    "GET /audit/checkpoint/cosigned",
    "GET /audit/proof/bundle",
    "GET /audit/proof/consistency",
    "GET /audit/proof/inclusion",
    "GET /healthz",
    "GET /login",
    "POST /login",
    "GET /login/mfa",
    "POST /login/mfa",
    "POST /login/passkey",
    "POST /login/passkey/options",
    "GET /oauth/authorize",
    "POST /oauth/authorize",
    "GET /oauth/logout",
    "POST /oauth/logout",
    "POST /oauth/register",
    "GET /openapi.json",
    "GET /readyz",
    "GET /signup",
    "POST /signup",
    "GET /static/palisade.css",
    "GET /static/messages.js",
    "GET /static/passkey.js",
    "GET /static/realtime.js",
];

const ALL_SCOPES: [&str; 5] = [
    "openid",
    "social:read",
    "social:write",
    "messages",
    "moderation",
];

struct Route {
    method: String,
    path: String,
    access: Value,
}

impl Route {
    fn spec(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn scope(&self) -> Option<&str> {
        (self.access["kind"] == "access_token").then(|| self.access["scope"].as_str().unwrap())
    }
}

async fn start(backend: Backend) -> Server {
    Server::start_with(
        Options::on(backend).accepting_key("PALISADE_ADMIN__API_KEY_SHA256", ADMIN_KEY),
    )
    .await
}

async fn inventory(server: &Server) -> Vec<Route> {
    inventories(server).await.0
}

/// The routes of the public listener and of the admin listener, as `/admin/routes` lists them.
async fn inventories(server: &Server) -> (Vec<Route>, Vec<Route>) {
    let r = server
        .http_client()
        .get(format!("{}/admin/routes", server.base()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let listed = |key: &str| -> Vec<Route> {
        body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Route {
                method: r["method"].as_str().unwrap().to_owned(),
                path: r["path"].as_str().unwrap().to_owned(),
                access: r["access"].clone(),
            })
            .collect()
    };
    (listed("routes"), listed("admin_listener"))
}

/// `path` with each `{parameter}` replaced by `id`.
fn with_id(path: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(id);
        rest = &rest[close + 1..];
    }
    out + rest
}

/// Whether the path `template` (with `{parameter}` segments) matches `path`.
fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// A request to `route` as an unknown caller: no cookie, no key, no token.
async fn anonymous(server: &Server, route: &Route) -> reqwest::Response {
    let http = server.http_client();
    let url = format!("{}{}", server.base(), with_id(&route.path, "x0"));
    let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut req = http
        .request(method, url)
        // A same-site browser, so that the answer is about credentials and not about CSRF.
        .header("origin", server.base())
        .header("sec-fetch-site", "same-origin");
    // The JSON API takes JSON; pages and OAuth endpoints take forms.
    let form = !route.path.starts_with("/api/") && !route.path.starts_with("/admin/");
    if route.method != "GET" && form {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body("");
    } else if route.method != "GET" {
        req = req.json(&json!({}));
    }
    req.send().await.unwrap()
}

/// RES-6: the inventory is the router. Public routes are exactly the reviewed list; every other
/// route refuses an anonymous caller the way its declaration says; the OpenAPI description
/// documents exactly the API's routes with the scope the inventory gives them.
#[tokio::test]
async fn every_route_declares_who_may_call_it() {
    let server = start(Backend::Sqlite).await;
    let routes = inventory(&server).await;
    assert!(routes.len() > 50, "{} routes", routes.len());

    let public: BTreeSet<String> = routes
        .iter()
        .filter(|r| r.access["kind"] == "public")
        .map(Route::spec)
        .collect();
    let reviewed: BTreeSet<String> = PUBLIC.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        public, reviewed,
        "public routes differ from the reviewed list"
    );

    for route in routes.iter().filter(|r| r.access["kind"] != "public") {
        let r = anonymous(&server, route).await;
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let refused = match route.access["kind"].as_str().unwrap() {
            // A browser without a session is sent to sign in, or refused outright (a write
            // carries no CSRF token that could match a session).
            "session" => {
                status == 401
                    || status == 403
                    || (status == 303
                        && location.as_deref().is_some_and(|l| l.starts_with("/login")))
            }
            // OAuth clients are told `invalid_client` (RFC 6749 §5.2), or the request is
            // malformed before the client is known.
            "client" => status == 401 || status == 400,
            // The probe's Origin (the server's address) is not the public URL: refused before
            // any credential is looked at; without credentials it would be a 401.
            "realtime" => status == 403 || status == 401,
            _ => status == 401,
        };
        assert!(
            refused,
            "{} ({}) answered {status} {location:?} to an anonymous caller",
            route.spec(),
            route.access
        );
    }

    // The OpenAPI description: the API's routes, each with the scope the inventory gives it.
    let openapi = server.fetch_json("/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let route = routes
                .iter()
                .find(|r| r.path == *path && r.method.eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{method} {path} is documented but not routed"));
            assert_eq!(
                operation["security"],
                json!([{ "oauth2": [route.scope().unwrap()] }]),
                "{method} {path}"
            );
            documented.insert(route.spec());
        }
    }
    let api: BTreeSet<String> = routes
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .map(Route::spec)
        .collect();
    assert_eq!(documented, api, "every API route is documented");
}

/// RES-6: the inventory is checked against the routers as they are served, on both listeners:
/// each listed path answers a method it does not list with `405` and an `Allow` header naming
/// exactly the listed methods, paths beside the listed ones are not found, and neither
/// listener answers the other's routes.
#[tokio::test]
async fn the_served_routers_are_the_inventory() {
    let server = start(Backend::Sqlite).await;
    let (public, admin) = inventories(&server).await;
    assert_eq!(
        admin.iter().map(Route::spec).collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "GET /healthz".into(),
            "GET /metrics".into(),
            "GET /readyz".into()
        ]),
        "the admin listener"
    );
    let http = server.http_client();
    let plain = reqwest::Client::new();
    let admin_base = format!("http://{}", server.admin);
    for (base, client, routes) in [
        (server.base(), &http, &public),
        (admin_base.clone(), &plain, &admin),
    ] {
        let mut methods = std::collections::BTreeMap::<&str, BTreeSet<String>>::new();
        for r in routes.iter() {
            assert_ne!(
                r.method, "PATCH",
                "the probe below needs a method no route uses"
            );
            methods.entry(&r.path).or_default().insert(r.method.clone());
        }
        for (path, listed) in methods {
            let url = format!("{base}{}", with_id(path, "x0"));
            let r = client.patch(&url).send().await.unwrap();
            assert_eq!(r.status(), 405, "PATCH {path}");
            let allowed: BTreeSet<String> = r.headers()["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| m != "HEAD")
                .collect();
            assert_eq!(allowed, listed, "{path} serves exactly the listed methods");
            let beside = format!("{}/unlisted", with_id(path, "x0"));
            if !routes.iter().any(|r| template_matches(&r.path, &beside)) {
                let r = client.get(format!("{base}{beside}")).send().await.unwrap();
                assert_eq!(r.status(), 404, "{beside}");
            }
        }
    }
    // Neither listener answers the other's routes.
    for path in ["/login", "/admin/routes", "/api/me", "/oauth/token"] {
        let r = plain
            .get(format!("{admin_base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} on the admin listener");
    }
    let r = http
        .get(format!("{}/metrics", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "metrics on the public listener");
}

/// The objects a user owns, by the path that names them.
struct Objects {
    profile: String,
    post: String,
    conversation: String,
}

impl Objects {
    /// The id `path` takes. A route naming a kind of object not listed here fails the test
    /// until it is added.
    fn id_for(&self, path: &str) -> &str {
        if path.starts_with("/api/profiles/") {
            &self.profile
        } else if path.starts_with("/api/posts/") {
            &self.post
        } else if path.starts_with("/api/conversations/") {
            &self.conversation
        } else {
            panic!("{path} names an object this test does not know")
        }
    }

    /// Creates `owner`'s private profile and post, and a conversation of theirs with `other`.
    async fn of(server: &Server, owner: &Member, other: &Member) -> Objects {
        let (status, _) = call(
            server,
            &owner.token,
            "PUT",
            &format!("/api/profiles/{}", owner.id),
            Some(json!({"display_name": "Owner", "bio": "mine", "public": false})),
        )
        .await;
        assert_eq!(status, 200);
        let body = json!({"body": "my own", "visibility": "private"});
        let (status, post) = call(server, &owner.token, "POST", "/api/posts", Some(body)).await;
        assert_eq!(status, 201, "{post}");
        let body = json!({"with": [other.id]});
        let (status, c) = call(
            server,
            &owner.token,
            "POST",
            "/api/conversations",
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{c}");
        let (status, _) = call(
            server,
            &owner.token,
            "POST",
            &format!("/api/conversations/{}/messages", c["id"].as_str().unwrap()),
            Some(json!({"body": "between us"})),
        )
        .await;
        assert_eq!(status, 201);
        Objects {
            profile: owner.id.clone(),
            post: post["id"].as_str().unwrap().to_owned(),
            conversation: c["id"].as_str().unwrap().to_owned(),
        }
    }
}

/// A valid body for the operation's request schema, from the OpenAPI description; a schema not
/// listed here fails the test until it is added.
fn example_body(openapi: &Value, route: &Route) -> Option<Value> {
    let operation = &openapi["paths"][&route.path][route.method.to_lowercase()];
    let schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()?
        .rsplit('/')
        .next()
        .unwrap();
    Some(match schema {
        "Update" => json!({"display_name": "Changed", "bio": "changed", "public": true}),
        "NewPost" => json!({"body": "hello", "visibility": "public"}),
        "NewConversation" => json!({"with": []}),
        "NewMessage" => json!({"body": "hello"}),
        "ReadMarker" => json!({"seq": 1}),
        other => panic!("no example body for {other}"),
    })
}

/// Calls `route` with `token` on the objects of `objects`.
async fn call_route(
    server: &Server,
    openapi: &Value,
    token: &str,
    route: &Route,
    objects: &Objects,
) -> (u16, Value) {
    let path = if route.path.contains('{') {
        with_id(&route.path, objects.id_for(&route.path))
    } else {
        route.path.clone()
    };
    call(
        server,
        token,
        &route.method,
        &path,
        example_body(openapi, route),
    )
    .await
}

/// RES-2 (c): for every route taking an access token, the owner's own token with every scope
/// but the one the route needs is refused, on the owner's own objects — never a default grant.
async fn a_token_without_the_scope_gets_nothing(backend: Backend) {
    let server = start(backend).await;
    let routes = inventory(&server).await;
    let openapi = server.fetch_json("/openapi.json").await;
    let client_id = &public_app(&server, "Scopes", &ALL_SCOPES, &[]);
    let (owner, mut agent) =
        member_signed_in(&server, client_id, "owner", &ALL_SCOPES.join(" ")).await;
    let other = member(&server, client_id, "other", "social:read").await;
    let objects = Objects::of(&server, &owner, &other).await;

    let mut checked = 0;
    for route in routes.iter().filter(|r| r.scope().is_some()) {
        let missing = route.scope().unwrap();
        let scope: Vec<&str> = ALL_SCOPES.into_iter().filter(|s| *s != missing).collect();
        let token = token_for(&server, &mut agent, client_id, &scope.join(" ")).await;
        let (status, body) = call_route(&server, &openapi, &token, route, &objects).await;
        assert_eq!(status, 403, "{} without {missing}: {body}", route.spec());
        // Refused for the scope itself, before any policy or handler ran.
        assert_eq!(body["error"], "insufficient_scope", "{}", route.spec());
        checked += 1;
    }
    assert!(checked >= 20, "{checked} routes checked");
}

/// RES-3 (a): for every route that names an object, another user editing the id in the path
/// is refused, and the owner's objects are unchanged afterwards. Acting on one's own relation
/// to an account (follow, block, mute) is the route's purpose and is listed apart.
async fn no_one_reaches_anothers_objects_by_editing_the_path(backend: Backend) {
    const OWN_RELATION: &[&str] = &[
        "PUT /api/profiles/{id}/follow",
        "DELETE /api/profiles/{id}/follow",
        "PUT /api/profiles/{id}/block",
        "DELETE /api/profiles/{id}/block",
        "PUT /api/profiles/{id}/mute",
        "DELETE /api/profiles/{id}/mute",
    ];
    let server = start(backend).await;
    let routes = inventory(&server).await;
    let openapi = server.fetch_json("/openapi.json").await;
    let client_id = &public_app(&server, "Idor", &ALL_SCOPES, &[]);
    let everything = ALL_SCOPES.join(" ");
    let bob = member(&server, client_id, "bob", &everything).await;
    let carol = member(&server, client_id, "carol", &everything).await;
    let mallory = member(&server, client_id, "mallory", &everything).await;
    let bobs = Objects::of(&server, &bob, &carol).await;

    let mut checked = 0;
    for route in routes
        .iter()
        .filter(|r| r.scope().is_some() && r.path.contains("{id}"))
        .filter(|r| !OWN_RELATION.contains(&r.spec().as_str()))
    {
        let (status, body) = call_route(&server, &openapi, &mallory.token, route, &bobs).await;
        assert!(
            status == 403 || status == 404,
            "mallory on bob's object: {} answered {status} {body}",
            route.spec()
        );
        checked += 1;
    }
    assert!(checked >= 9, "{checked} routes checked");

    // Bob's objects are as he left them.
    let (_, profile) = call(
        &server,
        &bob.token,
        "GET",
        &format!("/api/profiles/{}", bob.id),
        None,
    )
    .await;
    assert_eq!(profile["display_name"], "Owner");
    assert_eq!(profile["public"], false);
    let (status, post) = call(
        &server,
        &bob.token,
        "GET",
        &format!("/api/posts/{}", bobs.post),
        None,
    )
    .await;
    assert_eq!((status, &post["hidden"]), (200, &json!(false)));
    let (_, history) = call(
        &server,
        &carol.token,
        "GET",
        &format!("/api/conversations/{}/messages", bobs.conversation),
        None,
    )
    .await;
    let bodies: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"])
        .collect();
    assert_eq!(bodies, [&json!("between us")]);
}

on_both_backends!(a_token_without_the_scope_gets_nothing);
on_both_backends!(no_one_reaches_anothers_objects_by_editing_the_path);

/// Browser writes that take no CSRF token, reviewed one by one: anything else that a browser
/// may post to (a public or session route) must refuse a forged request.
const NOT_BROWSER_FORMS: &[&str] = &[
    // An authorization request sent by POST (OpenID Connect Core §3.1.2.1): it changes
    // nothing, and asks the signed-in user for consent on a page of its own.
    "POST /oauth/authorize",
    // RFC 7591 dynamic registration: an API authenticated by an initial access token.
    "POST /oauth/register",
];

/// The browser writes of the inventory: public and session routes that change something.
fn browser_writes(routes: &[Route]) -> Vec<&Route> {
    routes
        .iter()
        .filter(|r| r.method != "GET")
        .filter(|r| matches!(r.access["kind"].as_str(), Some("public" | "session")))
        .filter(|r| !NOT_BROWSER_FORMS.contains(&r.spec().as_str()))
        .collect()
}

/// A signed-in browser's cookies and the headers of a same-origin request, as reqwest parts.
fn signed_in_cookies(agent: &Agent) -> String {
    format!(
        "__Host-palisade-csrf={}; __Host-palisade-session={}",
        agent.csrf(),
        agent.session().unwrap()
    )
}

/// IDN-5: every browser write of the inventory refuses a request without the CSRF token, with
/// a made-up one, and with the right one from another site (Fetch Metadata or Origin) — forms
/// and this site's JSON scripts alike — and nothing happened to the account.
#[tokio::test]
async fn every_browser_write_refuses_a_forged_request() {
    let server = start(Backend::Sqlite).await;
    let routes = inventory(&server).await;
    let mut agent = server.agent();
    let email = unique_email("csrf");
    agent.sign_up(&email, PASSWORD).await;
    agent.log_in(&email, PASSWORD).await;
    let cookies = signed_in_cookies(&agent);
    let token = agent.csrf();
    let made_up = "A".repeat(43);
    let http = server.http_client();
    let send = |route: &Route, json: bool, csrf: Option<&str>, site: (&str, String)| {
        let url = format!("{}{}", server.base(), route.path);
        let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
        let mut req = http
            .request(method, url)
            .header("cookie", &cookies)
            .header("accept", "application/json")
            .header(site.0, site.1);
        req = match (json, csrf) {
            (true, Some(t)) => req.header("x-csrf-token", t),
            (false, Some(t)) => req.body(encode_form(&[("csrf", t)])),
            _ => req,
        };
        req = if json {
            req.header("content-type", "application/json").body("{}")
        } else {
            req.header("content-type", "application/x-www-form-urlencoded")
        };
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    let same_origin = || ("sec-fetch-site", "same-origin".to_owned());
    let writes = browser_writes(&routes);
    assert!(writes.len() >= 15, "{} browser writes", writes.len());
    let mut scripts = 0;
    for route in writes {
        // A route of this site's scripts takes JSON: a form is not even read.
        let json = send(route, false, None, same_origin()).await.0 == 415;
        scripts += usize::from(json);
        for (attack, csrf, site, code) in [
            ("no token", None, same_origin(), "csrf"),
            (
                "a made-up token",
                Some(made_up.as_str()),
                same_origin(),
                "csrf",
            ),
            (
                "another site, by Fetch Metadata",
                Some(token.as_str()),
                ("sec-fetch-site", "cross-site".to_owned()),
                "cross_site",
            ),
            (
                "another site, by Origin",
                Some(token.as_str()),
                ("origin", "https://evil.example".to_owned()),
                "cross_site",
            ),
        ] {
            let (status, body) = send(route, json, csrf, site).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some(code)),
                "{} with {attack}: {body}",
                route.spec()
            );
        }
    }
    assert_eq!(scripts, 4, "the passkey routes take JSON");
    // Nothing happened: still signed in, the same password, no second factor.
    let account = agent.get("/account").await;
    assert_eq!(account.status, 200);
    let mut again = server.agent();
    let r = again.log_in(&email, PASSWORD).await;
    assert_eq!((r.status, r.location()), (303, "/account"));
}

/// Malformed bodies, each with its content type and what a browser form route answers it
/// (the JSON API's answers depend on the schema); the same for every write.
fn malformed_bodies(csrf: &str) -> Vec<(&'static str, &'static str, Vec<u8>, u16)> {
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    vec![
        (
            "oversized",
            form,
            format!("csrf={csrf}&x={}", "a".repeat(200_000)).into_bytes(),
            413,
        ),
        (
            "invalid UTF-8",
            form,
            format!("csrf={csrf}&x=%ff%fe%80").into_bytes(),
            400,
        ),
        (
            "a repeated field",
            form,
            format!("csrf={csrf}&a=1&a=2").into_bytes(),
            400,
        ),
        (
            "binary garbage",
            form,
            vec![0xff, 0x00, 0x26, 0x3d, 0x25],
            400,
        ),
        ("truncated JSON", json, br#"{"body": "x"#.to_vec(), 415),
        ("a JSON array", json, b"[1, 2, 3]".to_vec(), 415),
        (
            "JSON of the wrong types",
            json,
            br#"{"body": 7, "with": "x", "seq": "one"}"#.to_vec(),
            415,
        ),
        (
            "invalid UTF-8 in JSON",
            json,
            b"{\"body\": \"\xff\xfe\"}".to_vec(),
            415,
        ),
        ("plain text", "text/plain", b"hello".to_vec(), 415),
    ]
}

/// PLT-9: every write of the inventory, called with the credentials its declaration asks for
/// and a malformed body, answers a typed client error carrying the request's trace id — never
/// a 5xx — and no handler panics.
#[tokio::test]
async fn every_write_answers_malformed_input_with_a_typed_error() {
    const SERVICE_KEY: &str = "service-key-for-the-route-inventory-0123456";
    let server = Server::start_with(
        Options::default()
            .accepting_key("PALISADE_ADMIN__API_KEY_SHA256", ADMIN_KEY)
            .accepting_key("PALISADE_AUDIT__INGEST_KEY_SHA256", SERVICE_KEY),
    )
    .await;
    let routes = inventory(&server).await;
    let client_id = &public_app(&server, "Malformed", &ALL_SCOPES, &[]);
    let (member, agent) =
        member_signed_in(&server, client_id, "malformed", &ALL_SCOPES.join(" ")).await;
    let confidential = server.register_client(&[
        "--name",
        "Malformed service",
        "--grant",
        "client_credentials",
        "--scope",
        "social:read",
    ]);
    let basic = (
        confidential["client_id"].as_str().unwrap().to_owned(),
        confidential["client_secret"].as_str().unwrap().to_owned(),
    );
    let cookies = signed_in_cookies(&agent);
    let csrf = agent.csrf();
    let http = server.http_client();
    // Browser forms answer each case exactly; the four passkey routes of this site's scripts
    // take JSON; `/login/mfa` without a pending second step sends the browser back first.
    let forms: Vec<String> = browser_writes(&routes)
        .into_iter()
        .map(Route::spec)
        .filter(|r| !r.contains("passkey") && r != "POST /login/mfa")
        .collect();
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    for route in routes.iter().filter(|r| r.method != "GET") {
        for (case, content_type, body, form_answer) in malformed_bodies(&csrf) {
            let url = format!("{}{}", server.base(), with_id(&route.path, "x0"));
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
            let mut req = http
                .request(method, url)
                .header("content-type", content_type)
                .header("accept", "application/json")
                .body(body);
            req = match route.access["kind"].as_str().unwrap() {
                "public" | "session" => req
                    .header("cookie", &cookies)
                    .header("sec-fetch-site", "same-origin")
                    .header("x-csrf-token", &csrf),
                "access_token" => req.bearer_auth(&member.token),
                "admin_key" => req.bearer_auth(ADMIN_KEY),
                "service_key" => req.bearer_auth(SERVICE_KEY),
                "client" => req.basic_auth(&basic.0, Some(&basic.1)),
                // A registration access token or a signature: refused without one, typed.
                _ => req,
            };
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            *answers.entry(status).or_default() += 1;
            let what = format!("{} with {case}: {status}", route.spec());
            assert!(status < 500, "{what}");
            if forms.contains(&route.spec()) {
                assert_eq!(status, form_answer, "{what}");
            }
            if status >= 400 {
                let trace = r.headers()["x-trace-id"].to_str().unwrap().to_owned();
                let body: Value = r
                    .json()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
                assert_eq!(body["trace_id"], trace.as_str(), "{what}: {body}");
                assert!(body["error"].is_string(), "{what}: {body}");
                let said = body.get("message").or(body.get("error_description"));
                assert!(said.is_some_and(Value::is_string), "{what}: {body}");
            }
        }
    }
    // The bodies were read and refused, not only stopped at the door: too large, malformed,
    // of a type the route does not take. (Routes that read no body — userinfo with the token
    // in its header, the passkey options — may answer as usual.)
    for refusal in [400, 413, 415] {
        assert!(answers.get(&refusal) >= Some(&15), "{answers:?}");
    }
    server.logs_flushed().await;
    assert!(!server.logs().contains("panicked"), "no handler panicked");
    assert_eq!(server.agent().get("/healthz").await.status, 200);
}
