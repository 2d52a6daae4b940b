//! The target as an oracle: it is asked once what it answers to the original token, to a
//! garbage token and to no token, and from then on says whether it accepts a probe.

use sha2::{Digest, Sha256};

use crate::ScanError;

/// Where the target expects its token.
#[derive(Clone, Debug)]
pub enum Placement {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A header of its own, holding the bare token.
    Header(String),
    /// A cookie.
    Cookie(String),
}

/// What one answer looked like.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    body: [u8; 32],
}

/// How an accepting answer is told from a refusing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The status differs (the usual 200 against 401).
    Status,
    /// The status is the same, but the body is not.
    Body,
}

pub(crate) struct Oracle {
    client: reqwest::Client,
    url: String,
    method: reqwest::Method,
    placement: Placement,
    accepted: Answer,
    mode: Mode,
    requests: std::sync::atomic::AtomicU64,
}

/// What calibration learned.
pub(crate) struct Calibration {
    pub accepted_status: u16,
    pub refused_status: u16,
    pub mode: Mode,
}

impl Oracle {
    pub(crate) async fn calibrate(
        client: reqwest::Client,
        url: &str,
        method: reqwest::Method,
        placement: Placement,
        token: &str,
    ) -> Result<(Self, Calibration), ScanError> {
        let mut oracle = Self {
            client,
            url: url.to_owned(),
            method,
            placement,
            accepted: Answer {
                status: 0,
                body: [0; 32],
            },
            mode: Mode::Status,
            requests: 0.into(),
        };
        let first = oracle.ask(Some(token)).await?;
        let second = oracle.ask(Some(token)).await?;
        let garbage = oracle.ask(Some("palisade-scan.not-a.token")).await?;
        let none = oracle.ask(None).await?;
        if first.status != second.status {
            return Err(ScanError::Oracle(format!(
                "the target answered the same token {} and then {}: it is not a stable oracle",
                first.status, second.status
            )));
        }
        let mode = if first.status != garbage.status && first.status != none.status {
            Mode::Status
        } else if first == second && first.body != garbage.body && first.body != none.body {
            Mode::Body
        } else {
            return Err(ScanError::Oracle(format!(
                "the target answers the token as it answers a garbage token (status {}): the token is refused or not checked at this URL, so nothing can be probed",
                first.status
            )));
        };
        oracle.accepted = first;
        oracle.mode = mode;
        Ok((
            oracle,
            Calibration {
                accepted_status: second.status,
                refused_status: garbage.status,
                mode,
            },
        ))
    }

    async fn ask(&self, token: Option<&str>) -> Result<Answer, ScanError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut request = self.client.request(self.method.clone(), &self.url);
        if let Some(token) = token {
            request = match &self.placement {
                Placement::Bearer => request.header("authorization", format!("Bearer {token}")),
                Placement::Header(name) => request.header(name.as_str(), token),
                Placement::Cookie(name) => request.header("cookie", format!("{name}={token}")),
            };
        }
        let response = request
            .send()
            .await
            .map_err(|e| ScanError::Http(format!("{}: {e}", self.url)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ScanError::Http(format!("{}: {e}", self.url)))?;
        Ok(Answer {
            status,
            body: Sha256::digest(&body).into(),
        })
    }

    /// Whether the target accepts the token, asked once.
    pub(crate) async fn accepts(&self, token: &str) -> Result<bool, ScanError> {
        let answer = self.ask(Some(token)).await?;
        Ok(match self.mode {
            Mode::Status => answer.status == self.accepted.status,
            Mode::Body => answer == self.accepted,
        })
    }

    /// Whether the target accepts the token, asked twice: a hit is reported only when both
    /// answers say so.
    pub(crate) async fn confirmed(&self, token: &str) -> Result<bool, ScanError> {
        Ok(self.accepts(token).await? && self.accepts(token).await?)
    }

    /// How many requests the scan has sent.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}
