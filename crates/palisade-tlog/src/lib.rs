//! The pure transparency-log code (AUD-3..5): the RFC 6962 / RFC 9162 Merkle tree and its
//! proofs, C2SP signed notes and checkpoints, tlog-proof bundles, and offline verification of a
//! whole log. No web, no database: the audit log, the witness and any third party's verifier
//! build on the same functions.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod bundle;
pub mod merkle;
pub mod note;
pub mod verify;
