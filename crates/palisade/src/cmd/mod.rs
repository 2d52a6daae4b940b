//! One file per subcommand.

pub mod admin;
pub mod audit;
pub mod clients;
pub mod keys;
pub mod serve;
pub mod witness;
