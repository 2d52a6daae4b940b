//! Service and operator authentication by API key (`Authorization: Bearer <key>`). Only the
//! keys' SHA-256 digests are configured, so a leaked configuration file grants nothing; with no
//! digest configured every request is refused (deny by default).

use crate::AppError;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct ApiKeys(Arc<Vec<[u8; 32]>>);

impl ApiKeys {
    /// Parses hex SHA-256 digests, naming the first malformed one.
    pub fn from_hex_digests(digests: &[String]) -> Result<Self, String> {
        digests
            .iter()
            .map(|hex| {
                data_encoding::HEXLOWER_PERMISSIVE
                    .decode(hex.as_bytes())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("`{hex}` is not 64 hex digits (SHA-256 of a key)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|d| Self(Arc::new(d)))
    }

    /// The configured key the request presents, named by the first 16 hex digits of its
    /// digest (what the configuration shows, never the key).
    pub fn presented(&self, headers: &HeaderMap) -> Option<String> {
        let key = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?;
        let digest = palisade_crypto::sha256(key.as_bytes());
        // Every digest is compared, so timing does not tell which key came close.
        let found = self.0.iter().fold(false, |found, d| {
            palisade_crypto::constant_time_eq(d, &digest) | found
        });
        found.then(|| data_encoding::HEXLOWER.encode(&digest[..8]))
    }

    /// `Ok` for a configured key; otherwise the 401 answer with its Bearer challenge.
    #[allow(clippy::result_large_err)]
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Response> {
        if self.presented(headers).is_some() {
            return Ok(());
        }
        let mut response = AppError::Unauthenticated.into_response();
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        Err(response)
    }
}
