//! Tokens and keys (TOK-1..5): signing keys (Ed25519 by default, ES256 available) with their
//! public JWKs, compact JWS signing, the key lifecycle (next → active → retired, or revoked) kept
//! in the database with private keys sealed at rest, and one verification function that applies
//! RFC 8725's rules so that every part of Palisade checks tokens the same way.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod dpop;
pub mod jws;
pub mod keyring;
pub mod keys;
pub mod verify;

pub use keys::{Algorithm, Jwk, SigningKey};
