//! The `palisade` binary (PLT-1): one executable, one subcommand per job.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

mod browser_sessions;
mod cmd;
mod config;
mod inventory;
mod logging;
mod node;
mod policies;
mod signing;

use clap::{Parser, Subcommand};

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "A security-first backend for real-time social applications"
)]
struct Cli {
    /// Configuration file (TOML). Defaults to ./palisade.toml when present.
    #[arg(long, global = true, env = "PALISADE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Inspect the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: cmd::audit::AuditCommand,
    },
    /// Administer accounts.
    Admin {
        #[command(subcommand)]
        command: cmd::admin::AdminCommand,
    },
    /// Run a C2SP tlog-witness that cosigns the configured logs' checkpoints.
    Witness,
    /// Manage the token signing keys.
    Keys {
        #[command(subcommand)]
        command: cmd::keys::KeysCommand,
    },
    /// Manage the internal CA and workload identities (SPIFFE X.509-SVIDs).
    Ca {
        #[command(subcommand)]
        command: cmd::ca::CaCommand,
    },
    /// Show and renew the certificates obtained by ACME.
    Certs {
        #[command(subcommand)]
        command: cmd::certs::CertsCommand,
    },
    /// Manage OAuth clients.
    Clients {
        #[command(subcommand)]
        command: cmd::clients::ClientsCommand,
    },
    /// Audit JWT and TLS deployments from outside (needs no configuration).
    Scan {
        #[command(subcommand)]
        command: cmd::scan::ScanCommand,
    },
    /// Check downloaded release files against the release's signed SHA256SUMS.
    VerifyRelease(cmd::verify_release::VerifyReleaseArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective values, secrets masked.
    Check,
}

/// mimalloc rather than glibc's allocator: request handling allocates many small, short-lived
/// buffers across threads, where glibc's arenas spent a fifth of the CPU of the token endpoint
/// and introspection (`bench/oauth_vs_oidc_provider.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns freed memory to the system at once and commits arenas only as they are used, so an
/// idle server does not keep what a burst (or the start-up password-hash calibration) touched.
#[allow(unsafe_code)]
fn release_memory_promptly() {
    // `mi_option_e` in the mimalloc v3 header vendored by libmimalloc-sys (not exported by it).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mimalloc's options are plain integers it reads atomically; setting them at any
    // time is allowed.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

fn main() -> ExitCode {
    release_memory_promptly();
    let cli = Cli::parse();
    match cli.command {
        Command::Scan { command } => return scan(command),
        Command::VerifyRelease(args) => {
            return cmd::verify_release::run(args).unwrap_or_else(|e| {
                eprintln!("palisade verify-release: {e:#}");
                ExitCode::FAILURE
            });
        }
        _ => {}
    }
    let config = match config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        println!("# configuration is valid\n{}", config.to_masked_toml());
        return ExitCode::SUCCESS;
    }
    // A server's log is its output; a command's output is its result, its log goes to stderr.
    let server = matches!(cli.command, Command::Serve | Command::Witness);
    let output = if server {
        logging::Output::Stdout
    } else {
        logging::Output::Stderr
    };
    // Held until main returns, so buffered log lines are flushed at exit.
    let _log_guard = logging::init(&config.log.level, output);
    palisade_tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("palisade: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => cmd::serve::run(config).await.map(|()| ExitCode::SUCCESS),
            Command::Migrate => {
                node::open_database(&config).await?;
                cmd::print(&serde_json::json!({ "migrations": "applied" }))?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Admin { command } => cmd::admin::run(config, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            // A log that fails verification is a finding, reported on stdout, not a crash.
            Command::Audit { command } => cmd::audit::run(config, command).await.map(|ok| {
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }),
            Command::Witness => cmd::witness::run(config).await.map(|()| ExitCode::SUCCESS),
            Command::Clients { command } => cmd::clients::run(config, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Ca { command } => cmd::ca::run(config, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Certs { command } => cmd::certs::run(config, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Keys { command } => cmd::keys::run(config, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Config { .. } | Command::Scan { .. } | Command::VerifyRelease(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Once, on stderr; a server also logs it, where its operators look.
            if server {
                tracing::error!(error = %format!("{e:#}"), "palisade stopped with an error");
            }
            eprintln!("palisade: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A scanner looks at a deployment from outside: no configuration, no server log.
fn scan(command: cmd::scan::ScanCommand) -> ExitCode {
    palisade_tls::install_crypto_provider();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(cmd::scan::run(command)));
    result.unwrap_or_else(|e| {
        eprintln!("palisade scan: {e:#}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key and client ids are base64url: one in 64 begins with `-`, which must not be
    /// taken for an option.
    #[test]
    fn ids_beginning_with_a_hyphen_are_arguments() {
        for args in [
            ["palisade", "keys", "revoke", "-Uf0_x"],
            ["palisade", "clients", "delete", "-Uf0_x"],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }
}
