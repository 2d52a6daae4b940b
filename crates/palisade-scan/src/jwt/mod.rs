//! `scan jwt`: a token audited offline (header, claims, key set, weak HMAC secret), and,
//! given a target, probed actively.

pub mod active;
mod claims;
pub mod crack;
mod der;
mod jwks;
pub mod rules;
mod sign;
mod token;

use serde_json::Value;

pub use active::{Placement, Target};
pub use crack::{Candidates, Mask};
pub use sign::Signer;
pub use token::Token;

use crate::ScanError;
use crate::finding::{Finding, Report, Severity};

/// What to scan and how.
pub struct Options {
    /// The compact token.
    pub token: String,
    /// A key set to audit and use: an `http(s)://` URL or a file. Without it, an active scan
    /// looks for the target's own under `/.well-known/`.
    pub jwks: Option<String>,
    /// Where to guess an HMAC secret from; empty for no guessing.
    pub candidates: Vec<Candidates>,
    pub threads: usize,
    /// Progress lines on stderr while guessing.
    pub progress: bool,
    /// The longest lifetime (exp − iat, seconds) not reported.
    pub max_lifetime: i64,
    /// A key that signs tokens the target accepts, for the probes that need one.
    pub signer: Option<Signer>,
    pub target: Option<Target>,
    /// Used for every request: the key set and the target.
    pub client: reqwest::Client,
    /// Print a cracked secret in full rather than its length and ends.
    pub reveal_secrets: bool,
}

pub async fn scan(options: Options) -> Result<Report, ScanError> {
    let token = Token::parse(&options.token)?;
    let mut report = Report::new(
        options
            .target
            .as_ref()
            .map_or("token".to_owned(), |t| t.url.clone()),
    );
    claims::audit(&token, options.max_lifetime, &mut report);

    let keys = key_set(&options, &mut report).await?;
    jwks::audit(&keys, &mut report);

    let mut signer = options.signer;
    if let Some(secret) = crack_secret(
        &token,
        options.candidates,
        options.threads,
        options.progress,
        options.reveal_secrets,
        &mut report,
    )
    .await?
    {
        signer = signer.or(Some(Signer::hmac(token.alg(), secret)?));
    }
    if let Some(target) = &options.target {
        active::scan(
            target,
            &options.client,
            options.token.trim(),
            &token,
            &keys,
            signer.as_ref(),
            &mut report,
        )
        .await?;
    }
    report.sort();
    Ok(report)
}

/// The key set named, or the target's own, or none.
async fn key_set(options: &Options, report: &mut Report) -> Result<Vec<token::Object>, ScanError> {
    if let Some(source) = &options.jwks {
        let document = if source.starts_with("https://") || source.starts_with("http://") {
            fetch(&options.client, source).await?
        } else {
            std::fs::read(source).map_err(|e| ScanError::Io(format!("{source}: {e}")))?
        };
        return jwks::parse(&document);
    }
    let Some(target) = &options.target else {
        return Ok(Vec::new());
    };
    let Some(origin) = origin(&target.url) else {
        return Ok(Vec::new());
    };
    let mut candidates = Vec::new();
    if let Ok(doc) = fetch(
        &options.client,
        &format!("{origin}/.well-known/openid-configuration"),
    )
    .await
        && let Some(uri) = serde_json::from_slice::<Value>(&doc)
            .ok()
            .and_then(|v| v.get("jwks_uri")?.as_str().map(str::to_owned))
    {
        candidates.push(uri);
    }
    candidates.push(format!("{origin}/.well-known/jwks.json"));
    for url in candidates {
        if let Ok(keys) = fetch(&options.client, &url)
            .await
            .and_then(|d| jwks::parse(&d))
        {
            report.add(Finding::new(
                &rules::ORACLE,
                Severity::Info,
                format!("the target publishes {} keys at {url}", keys.len()),
            ));
            return Ok(keys);
        }
    }
    Ok(Vec::new())
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{authority}"))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, ScanError> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| ScanError::Http(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(ScanError::Http(format!("{url}: {}", response.status())));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| ScanError::Http(format!("{url}: {e}")))?;
    Ok(body.to_vec())
}

/// Guesses the HMAC secret on a blocking thread; reports what it found or how much it tried.
async fn crack_secret(
    token: &Token,
    candidates: Vec<Candidates>,
    threads: usize,
    progress: bool,
    reveal: bool,
    report: &mut Report,
) -> Result<Option<Vec<u8>>, ScanError> {
    let Some(alg) = crack::HmacAlg::from_jws(token.alg()) else {
        return Ok(None);
    };
    if candidates.is_empty() {
        return Ok(None);
    }
    let Some(target) = crack::Target::new(alg, token.signing_input.as_bytes(), &token.signature)
    else {
        return Ok(None);
    };
    let outcome = tokio::task::spawn_blocking(move || {
        crack::crack(&target, candidates, threads.max(1), progress)
    })
    .await
    .map_err(|e| ScanError::Io(format!("the guessing threads stopped: {e}")))??;
    let effort = format!(
        "{} guesses in {:.2} s, {:.2} M/s",
        outcome.tried,
        outcome.elapsed.as_secs_f64(),
        outcome.per_second() / 1e6
    );
    match outcome.secret {
        Some(secret) => {
            report.add(
                Finding::new(
                    &rules::WEAK_SECRET,
                    Severity::Critical,
                    format!("the {} secret is {}", token.alg(), shown(&secret, reveal)),
                )
                .with_evidence(effort),
            );
            Ok(Some(secret))
        }
        None => {
            report.add(Finding::new(
                &rules::WEAK_SECRET,
                Severity::Info,
                format!("no secret found ({effort})"),
            ));
            Ok(None)
        }
    }
}

/// A cracked secret as a report may show it: in full only when asked, since reports end up
/// in CI logs and issue trackers.
fn shown(secret: &[u8], reveal: bool) -> String {
    let text = String::from_utf8_lossy(secret);
    if reveal {
        return format!("{text:?}");
    }
    let chars: Vec<char> = text.chars().collect();
    match chars.as_slice() {
        [] => "empty".into(),
        [only] => format!("one character long ({only:?}…)"),
        [first, .., last] => format!(
            "{} characters long, {first}…{last} (--reveal-secrets shows it)",
            chars.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_a_secret_only_when_asked() {
        assert_eq!(shown(b"secret", true), "\"secret\"");
        assert_eq!(
            shown(b"secret", false),
            "6 characters long, s…t (--reveal-secrets shows it)"
        );
        assert_eq!(shown(b"", false), "empty");
    }

    #[test]
    fn takes_the_origin_of_a_url() {
        assert_eq!(
            origin("https://h:8443/api/me?x=1").as_deref(),
            Some("https://h:8443")
        );
        assert_eq!(origin("not a url"), None);
    }
}
