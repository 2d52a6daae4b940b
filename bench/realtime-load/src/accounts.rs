//! Accounts made the way users make them: signed up and signed in through Palisade's pages,
//! each from a loopback address of its own (as distinct people would be), plus an access token
//! from the authorization-code flow with PKCE for the account that posts.

use anyhow::{Context, Result, bail};
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

const PASSWORD: &str = "correct horse battery staple";
const SESSION_COOKIE: &str = "__Host-palisade-session";
const CSRF_COOKIE: &str = "__Host-palisade-csrf";
pub(crate) const REDIRECT: &str = "https://bench.invalid/cb";

/// What the benchmarks connect as: the accounts' session cookies, and the poster's token.
#[derive(Serialize, Deserialize)]
pub(crate) struct Population {
    pub base: String,
    pub sessions: Vec<String>,
    pub poster_id: String,
    pub poster_token: String,
}

/// A browser: a cookie jar over one HTTP client.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

pub(crate) struct Page {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl Browser {
    pub(crate) fn new(base: &str, ca_pem: &[u8], local: IpAddr) -> Result<Self> {
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem)?])
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local)
            .build()?;
        Ok(Self {
            client,
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        })
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<Page> {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header("cookie", cookie).send().await?;
        for set in response.headers().get_all("set-cookie") {
            let first = set.to_str()?.split(';').next().unwrap_or_default();
            if let Some((k, v)) = first.split_once('=') {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await?;
        Ok(Page {
            status,
            location,
            body,
        })
    }

    pub(crate) async fn get(&mut self, path: &str) -> Result<Page> {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html");
        self.send(request).await
    }

    /// Posts a form as a page of the site does: its Origin and the CSRF field.
    pub(crate) async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<Page> {
        let csrf = self
            .cookies
            .get(CSRF_COOKIE)
            .cloned()
            .context("no CSRF cookie: GET a page first")?;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .form(&all);
        self.send(request).await
    }

    pub(crate) fn session(&self) -> Result<String> {
        let value = self.cookies.get(SESSION_COOKIE).context("not signed in")?;
        Ok(format!("{SESSION_COOKIE}={value}"))
    }

    /// A browser already signed in with `session` (a cookie of [`Browser::session`]).
    pub(crate) fn signed_in(
        base: &str,
        ca_pem: &[u8],
        local: IpAddr,
        session: &str,
    ) -> Result<Self> {
        let mut browser = Self::new(base, ca_pem, local)?;
        let (k, v) = session.split_once('=').context("a cookie")?;
        browser.cookies.insert(k.to_owned(), v.to_owned());
        Ok(browser)
    }

    /// Signs a new account up and in.
    pub(crate) async fn sign_up_and_in(&mut self, email: &str) -> Result<()> {
        self.get("/signup").await?;
        let page = self
            .post_form("/signup", &[("email", email), ("password", PASSWORD)])
            .await?;
        if page.status != 303 {
            bail!("sign-up answered {}: {}", page.status, page.body);
        }
        self.get("/login").await?;
        let page = self
            .post_form("/login", &[("email", email), ("password", PASSWORD)])
            .await?;
        if page.status != 303 || !self.cookies.contains_key(SESSION_COOKIE) {
            bail!("sign-in answered {}: {}", page.status, page.body);
        }
        Ok(())
    }

    /// An access token of `client_id` for `scope`, through the authorization-code flow with
    /// PKCE, consenting when asked.
    pub(crate) async fn token(&mut self, client_id: &str, scope: &str) -> Result<String> {
        let verifier = format!(
            "{}{}",
            palisade_crypto::random_token(),
            palisade_crypto::random_token()
        );
        let challenge = BASE64URL_NOPAD.encode(&palisade_crypto::sha256(verifier.as_bytes()));
        let query = serde_urlencoded(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "bench"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let page = self.get(&format!("/oauth/authorize?{query}")).await?;
        let location = if page.status == 200 {
            let mut fields = hidden_fields(&page.body);
            fields.push(("decision".into(), "allow".into()));
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.post_form("/oauth/authorize/decision", &fields)
                .await?
                .location
        } else {
            page.location
        };
        let code = location
            .split_once("code=")
            .and_then(|(_, rest)| rest.split('&').next())
            .with_context(|| format!("no code in {location:?}"))?
            .to_owned();
        let response = self
            .client
            .post(format!("{}/oauth/token", self.base))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", client_id),
            ])
            .send()
            .await?;
        let answer: serde_json::Value = response.json().await?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no token: {answer}"))
    }
}

fn serde_urlencoded(fields: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("https://x/").expect("a valid URL");
    url.query_pairs_mut().extend_pairs(fields);
    url.query().unwrap_or_default().to_owned()
}

/// The hidden fields of a page's form but its CSRF field (the browser adds its own).
fn hidden_fields(body: &str) -> Vec<(String, String)> {
    // An attribute's value in one `<input ...>` tag, entities decoded (askama escapes these).
    fn attribute(tag: &str, name: &str) -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[start..start + tag[start..].find('"')?];
        let mut decoded = value.to_owned();
        for (entity, c) in [
            ("&quot;", "\""),
            ("&#34;", "\""),
            ("&#39;", "'"),
            ("&#x27;", "'"),
            ("&lt;", "<"),
            ("&gt;", ">"),
            ("&amp;", "&"),
        ] {
            decoded = decoded.replace(entity, c);
        }
        Some(decoded)
    }
    body.split("<input")
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(tag, _)| tag))
        .filter(|tag| attribute(tag, "type").as_deref() == Some("hidden"))
        .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
        .filter(|(name, _)| name != "csrf")
        .collect()
}
