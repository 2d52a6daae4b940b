//! The load generator of the real-time benchmarks (bench/realtime.sh). It makes accounts over
//! HTTP, holds thousands of WebSocket connections from many loopback addresses, and measures:
//! memory per idle connection (the server's resident memory, read from /proc), fan-out
//! deliveries per second (Palisade and its Node peers), direct-message latency at a fixed rate,
//! and a reconnect storm. Each command prints one JSON document.

mod accounts;
mod connections;
mod peers;
mod runs;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub(crate) struct Common {
    /// The CA certificate (PEM) the server's certificate chains to.
    #[arg(long)]
    ca: PathBuf,
    /// Loopback source addresses to spread connections over.
    #[arg(long, default_value_t = 40)]
    spread: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Signs up and in `accounts` accounts and gets the first one a token to post with.
    Setup {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        base: String,
        #[arg(long)]
        accounts: usize,
        /// A public client of the code flow with redirect URI https://bench.invalid/cb.
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Resident memory of the server (`pid`) per idle, subscribed connection at each count.
    Memory {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        population: PathBuf,
        #[arg(long)]
        pid: u32,
        /// The server's Prometheus endpoint, to know when it holds what was opened.
        #[arg(long)]
        metrics: String,
        #[arg(long, value_delimiter = ',')]
        counts: Vec<usize>,
    },
    /// Deliveries per second of messages published to one channel with `subscribers`.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: runs::FanoutLoad,
        #[command(subcommand)]
        target: runs::Target,
    },
    /// Direct-message latency from the sender's socket to the receiver's at each rate.
    Latency {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        population: PathBuf,
        #[arg(long, default_value_t = 100)]
        conversations: usize,
        #[arg(long, value_delimiter = ',')]
        rates: Vec<u64>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// `clients` subscribers lose their connections together and come back together.
    Storm {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        population: PathBuf,
        #[arg(long)]
        clients: usize,
        /// Posts published while they are away.
        #[arg(long, default_value_t = 5)]
        missed: u64,
    },
}

fn population(path: &PathBuf) -> Result<accounts::Population> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

#[tokio::main]
async fn main() -> Result<()> {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .ok();
    let report = match Cli::parse().command {
        Command::Setup {
            common,
            base,
            accounts,
            client_id,
            out,
        } => {
            let made = runs::setup(&common, &base, accounts, &client_id).await?;
            std::fs::write(&out, serde_json::to_vec(&made)?)?;
            serde_json::json!({"accounts": made.sessions.len()})
        }
        Command::Memory {
            common,
            population: p,
            pid,
            metrics,
            counts,
        } => runs::memory(&common, &population(&p)?, pid, &metrics, &counts).await?,
        Command::Fanout {
            common,
            load,
            target,
        } => runs::fanout(&common, &load, target).await?,
        Command::Latency {
            common,
            population: p,
            conversations,
            rates,
            seconds,
        } => runs::latency(&common, &population(&p)?, conversations, &rates, seconds).await?,
        Command::Storm {
            common,
            population: p,
            clients,
            missed,
        } => runs::storm(&common, &population(&p)?, clients, missed).await?,
    };
    println!("{report}");
    Ok(())
}
