//! One file per subcommand. Every command prints its result as one JSON document on stdout,
//! so `palisade clients create ... > client.json` is a file a program can read; its logs and
//! progress go to stderr. The scanners print their report in the format asked for (text by
//! default, JSON or SARIF).

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod ca;
pub(crate) mod certs;
pub(crate) mod clients;
pub(crate) mod keys;
pub(crate) mod scan;
pub(crate) mod serve;
pub(crate) mod verify_release;
pub(crate) mod witness;

/// Prints a command's result.
pub(crate) fn print(result: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(result)?);
    Ok(())
}
