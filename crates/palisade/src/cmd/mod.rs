//! One file per subcommand.

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod clients;
pub(crate) mod keys;
pub(crate) mod serve;
pub(crate) mod witness;
