//! Palisade's scanners, as a library any program can use: `jwt` audits a token offline and
//! probes a target that accepts it; `tls` audits a TLS server's protocols, suites, groups and
//! chain; every scan returns a [`finding::Report`] that
//! [`output`] writes as text, JSON or SARIF 2.1.0.
//!
//! It depends on no Palisade server crate: it sees a target only from outside.
// Library code handles every failure; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod finding;
pub mod jwt;
pub mod output;
pub mod tls;

/// Why a scan could not be completed (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("bad usage: {0}")]
    Usage(String),
    #[error("the token cannot be read: {0}")]
    Token(String),
    #[error("the key set cannot be read: {0}")]
    Jwks(String),
    #[error("the key cannot be used: {0}")]
    Key(String),
    #[error("request failed: {0}")]
    Http(String),
    #[error("the target cannot be probed: {0}")]
    Oracle(String),
    #[error("the TLS server cannot be scanned: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
}
