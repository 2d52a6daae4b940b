//! The benchmarks themselves; each returns the JSON document its command prints.

use crate::Common;
use crate::accounts::{Browser, Population};
use crate::connections::{Gateway, open_all, source};
use crate::peers::{self, Flavor, Peer};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use palisade_realtime_client::protocol::{ClientFrame, ServerFrame};
use palisade_realtime_client::{Connection, Incoming, Positions, backoff};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a benchmark waits for what it started before it reports a failure.
const PATIENCE: Duration = Duration::from_secs(120);

pub(crate) async fn setup(
    common: &Common,
    base: &str,
    accounts: usize,
    client_id: &str,
) -> Result<Population> {
    let ca = std::fs::read(&common.ca)?;
    // Two at a time: each sign-up and sign-in is a password hash, which the server admits on a
    // bounded number of threads.
    let sessions = futures_util::stream::iter(0..accounts)
        .map(|i| {
            let ca = ca.clone();
            async move {
                let mut browser = Browser::new(base, &ca, source(i, 10_000))?;
                let email = format!("bench-{i}-{}@example.com", palisade_crypto::random_token());
                browser.sign_up_and_in(&email).await?;
                browser.session()
            }
        })
        .buffer_unordered(2);
    let sessions: Vec<String> = futures_util::TryStreamExt::try_collect(sessions).await?;
    let mut poster = Browser::signed_in(base, &ca, source(0, 10_000), &sessions[0])?;
    let poster_token = poster
        .token(client_id, "social:read social:write messages")
        .await?;
    let gateway = Gateway::new(base, &common.ca)?;
    let (connection, poster_id) = gateway.open(&sessions[0], source(0, 1)).await?;
    connection.close().await?;
    // A public profile: anyone signed in may follow its posts live.
    let client = api_client(&common.ca)?;
    let profile = json!({"display_name": "Poster", "bio": "", "public": true});
    let answer = client
        .put(format!("{base}/api/profiles/{poster_id}"))
        .bearer_auth(&poster_token)
        .json(&profile)
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("making the profile public: {}", answer.text().await?);
    }
    Ok(Population {
        base: base.to_owned(),
        sessions,
        poster_id,
        poster_token,
    })
}

/// A connection of the population (the accounts take turns), subscribed to `channel`.
async fn subscribed(
    gateway: &Gateway,
    population: &Population,
    i: usize,
    spread: usize,
    channel: &str,
) -> Result<(Connection, Positions)> {
    let session = &population.sessions[i % population.sessions.len()];
    let (mut connection, _) = gateway.open(session, source(i, spread)).await?;
    connection
        .send(&ClientFrame::Subscribe {
            channel: channel.to_owned(),
            since: None,
        })
        .await?;
    let frame = connection.frame().await?;
    let mut positions = Positions::default();
    match &frame {
        ServerFrame::Subscribed { .. } => positions.observe(&frame).map_err(anyhow::Error::msg)?,
        other => bail!("subscribing to {channel}: {other:?}"),
    }
    Ok((connection, positions))
}

/// Polls `done` every few milliseconds until it holds, failing after [`PATIENCE`].
async fn until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        if Instant::now() > deadline {
            bail!("gave up waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

async fn gauge(metrics: &str, name: &str) -> Result<u64> {
    let text = reqwest::get(metrics).await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map(|v| v as u64)
        .with_context(|| format!("no {name} in {metrics}"))
}

async fn connections_held(metrics: &str, expected: u64) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let held = gauge(metrics, "palisade_realtime_connections").await?;
        if held == expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server holds {held} connections, not {expected}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn memory(
    common: &Common,
    population: &Population,
    pid: u32,
    metrics: &str,
    counts: &[usize],
) -> Result<Value> {
    let gateway = Gateway::new(&population.base, &common.ca)?;
    let open = |from: usize, to: usize| {
        let gateway = gateway.clone();
        async move {
            open_all(to - from, |i| {
                subscribed(
                    &gateway,
                    population,
                    from + i,
                    common.spread,
                    "notifications",
                )
            })
            .await
        }
    };
    // Warm-up: the allocator's pools, the server's caches, its task and buffer pools.
    let warm = open(0, counts[0] / 10).await?;
    for (connection, _) in warm {
        connection.close().await?;
    }
    connections_held(metrics, 0).await?;
    let baseline = rss_kib(pid)?;
    let own_baseline = rss_kib(std::process::id())?;
    let mut held = Vec::new();
    let mut points = Vec::new();
    for &count in counts {
        let more = open(held.len(), count).await?;
        held.extend(more);
        connections_held(metrics, count as u64).await?;
        let rss = rss_kib(pid)?;
        let own = rss_kib(std::process::id())?;
        points.push(json!({
            "connections": count,
            "server_rss_kib": rss,
            "bytes_per_connection": (rss.saturating_sub(baseline) * 1024) / count as u64,
            "client_bytes_per_connection": (own.saturating_sub(own_baseline) * 1024) / count as u64,
        }));
    }
    for (connection, _) in held {
        connection.abort();
    }
    Ok(json!({"baseline_rss_kib": baseline, "points": points}))
}

#[derive(clap::Args, Clone)]
pub(crate) struct FanoutLoad {
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Messages per round.
    #[arg(long, default_value_t = 200)]
    messages: u64,
    /// Messages in flight at most: the next is published once every subscriber has all but
    /// this many of those before it (so no queue is ever deeper than that).
    #[arg(long, default_value_t = 16)]
    window: u64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(clap::Subcommand, Clone)]
pub(crate) enum Target {
    /// Palisade: the population's sessions subscribe to the poster's `posts:` channel, and the
    /// poster publishes through the API (each post stored before it is delivered).
    Palisade {
        #[arg(long)]
        population: std::path::PathBuf,
    },
    /// A Node peer's processes on these ports.
    Peer {
        #[arg(long)]
        flavor: Flavor,
        #[arg(long, value_delimiter = ',')]
        ports: Vec<u16>,
        /// The HS256 secret the peer verifies tokens with.
        #[arg(long)]
        secret: String,
    },
}

/// Publishes one message for a fan-out round.
enum Publisher {
    /// Posts through the API, one at a time: each answered once stored. (Posts kept in flight
    /// together are refused with 503 here: their writes wait behind the deliveries of the
    /// posts before them, past SQLite's busy timeout.)
    Palisade {
        client: reqwest::Client,
        url: String,
        token: String,
    },
    Peer {
        peer: Arc<Peer>,
        sockets: Vec<peers::Socket>,
    },
}

/// A client of the API trusting the server's CA.
fn api_client(ca: &std::path::Path) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(ca)?)?])
        .build()?)
}

impl Publisher {
    /// The population's poster, posting through the API.
    fn poster(common: &Common, population: &Population) -> Result<Self> {
        Ok(Publisher::Palisade {
            client: api_client(&common.ca)?,
            url: format!("{}/api/posts", population.base),
            token: population.poster_token.clone(),
        })
    }

    async fn publish(&mut self, n: u64) -> Result<()> {
        match self {
            Publisher::Palisade { client, url, token } => {
                let body =
                    json!({"body": format!("post {n} to every follower"), "visibility": "public"});
                let response = client
                    .post(&*url)
                    .bearer_auth(&*token)
                    .json(&body)
                    .send()
                    .await?;
                if response.status().as_u16() != 201 {
                    bail!(
                        "posting answered {}: {}",
                        response.status(),
                        response.text().await?
                    );
                }
                Ok(())
            }
            Publisher::Peer { peer, sockets } => peer.publish(sockets, n).await,
        }
    }
}

pub(crate) async fn fanout(common: &Common, load: &FanoutLoad, target: Target) -> Result<Value> {
    let delivered = Arc::new(AtomicU64::new(0));
    let n = load.subscribers;
    let (mut publisher, negotiated) = match target {
        Target::Palisade { population } => {
            let population = crate::population(&population)?;
            let gateway = Gateway::new(&population.base, &common.ca)?;
            let channel = format!("posts:{}", population.poster_id);
            let held = open_all(n, |i| {
                subscribed(&gateway, &population, i, common.spread, &channel)
            })
            .await?;
            for (mut connection, _) in held {
                let delivered = delivered.clone();
                tokio::spawn(async move {
                    while let Ok(Incoming::Frame(frame)) = connection.recv().await {
                        if matches!(frame, ServerFrame::Message { .. }) {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            let publisher = Publisher::poster(common, &population)?;
            (publisher, "palisade.v1 over TLS 1.3 (rustls)")
        }
        Target::Peer {
            flavor,
            ports,
            secret,
        } => {
            let peer = Arc::new(Peer {
                flavor,
                ports,
                tls: crate::connections::tls(&common.ca)?,
                token: peers::token(&secret, "bench")?,
            });
            let sockets = open_all(n, |i| {
                let peer = peer.clone();
                async move { peer.subscriber(i, source(i, common.spread)).await }
            })
            .await?;
            for socket in sockets {
                let (peer, delivered) = (peer.clone(), delivered.clone());
                tokio::spawn(async move { peer.count(socket, delivered).await });
            }
            let sockets = peer.publishers().await?;
            (Publisher::Peer { peer, sockets }, "TLS 1.3 (OpenSSL)")
        }
    };
    let mut rates = Vec::new();
    for round in 0..=load.rounds {
        let start_count = delivered.load(Ordering::Relaxed);
        let started = Instant::now();
        for i in 0..load.messages {
            let ahead = i.saturating_sub(load.window) * n as u64;
            until("deliveries to catch up", || {
                delivered.load(Ordering::Relaxed) - start_count >= ahead
            })
            .await?;
            publisher.publish(i).await?;
        }
        let expected = load.messages * n as u64;
        until("every delivery", || {
            delivered.load(Ordering::Relaxed) - start_count >= expected
        })
        .await?;
        let rate = expected as f64 / started.elapsed().as_secs_f64();
        // Round 0 warms up and is not reported.
        if round > 0 {
            rates.push(rate);
        }
    }
    Ok(json!({
        "subscribers": n,
        "messages_per_round": load.messages,
        "window": load.window,
        "deliveries_per_second": rates,
        "median": median(&mut rates.clone()),
        "negotiated": negotiated,
    }))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank] as f64 / 1e6
}

/// One conversation of the latency benchmark: its id, the sender's and the receiver's session.
struct Pair {
    id: String,
    sender: String,
    receiver: String,
}

async fn pairs(common: &Common, population: &Population, count: usize) -> Result<Vec<Pair>> {
    let gateway = Gateway::new(&population.base, &common.ca)?;
    let ca = std::fs::read(&common.ca)?;
    let mut pairs = Vec::new();
    for c in 0..count {
        let sender = population.sessions[2 * c].clone();
        let receiver = population.sessions[2 * c + 1].clone();
        let (connection, receiver_id) = gateway.open(&receiver, source(c, 1)).await?;
        connection.close().await?;
        let mut browser = Browser::signed_in(&population.base, &ca, source(c, 1), &sender)?;
        browser.get("/account/messages").await?;
        let page = browser
            .post_form("/account/messages", &[("with", &receiver_id)])
            .await?;
        let id = page
            .location
            .strip_prefix("/account/messages/")
            .with_context(|| format!("starting a conversation: {} {}", page.status, page.body))?
            .to_owned();
        pairs.push(Pair {
            id,
            sender,
            receiver,
        });
    }
    Ok(pairs)
}

pub(crate) async fn latency(
    common: &Common,
    population: &Population,
    conversations: usize,
    rates: &[u64],
    seconds: u64,
) -> Result<Value> {
    let gateway = Gateway::new(&population.base, &common.ca)?;
    let pairs = pairs(common, population, conversations).await?;
    let epoch = Instant::now();
    let mut results = Vec::new();
    for &rate in rates {
        let recording = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
        let refused = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for (c, pair) in pairs.iter().enumerate() {
            let channel = format!("conversation:{}", pair.id);
            let (mut receiver, _) = gateway
                .open(&pair.receiver, source(2 * c, common.spread))
                .await?;
            receiver
                .send(&ClientFrame::Subscribe {
                    channel: channel.clone(),
                    since: None,
                })
                .await?;
            match receiver.frame().await? {
                ServerFrame::Subscribed { .. } => {}
                other => bail!("subscribing the receiver: {other:?}"),
            }
            let (mut sender, _) = gateway
                .open(&pair.sender, source(2 * c + 1, common.spread))
                .await?;
            let (recording, samples) = (recording.clone(), samples.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok(Incoming::Frame(ServerFrame::Message { data, .. })) =
                    receiver.recv().await
                {
                    let sent: u64 = data["body"]
                        .as_str()
                        .and_then(|b| b.parse().ok())
                        .unwrap_or(0);
                    let now = epoch.elapsed().as_nanos() as u64;
                    if recording.load(Ordering::Relaxed) {
                        samples.lock().expect("samples").push(now - sent);
                    }
                }
            }));
            let (stop, refused) = (stop.clone(), refused.clone());
            let every = Duration::from_secs_f64(conversations as f64 / rate as f64);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tokio::select! {
                        _ = tick.tick() => {
                            seq += 1;
                            let frame = ClientFrame::Publish {
                                channel: channel.clone(),
                                seq,
                                key: format!("m{c}-{rate}-{seq}"),
                                data: json!({"body": epoch.elapsed().as_nanos().to_string()}),
                            };
                            if sender.send(&frame).await.is_err() { return; }
                        }
                        answer = sender.recv() => match answer {
                            Ok(Incoming::Frame(ServerFrame::Error { .. })) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Incoming::Frame(_)) => {}
                            _ => return,
                        },
                    }
                }
                sender.abort();
            }));
        }
        // Two seconds to settle, then the measured window.
        tokio::time::sleep(Duration::from_secs(2)).await;
        recording.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        recording.store(false, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        for task in &tasks {
            task.abort();
        }
        let mut sorted = std::mem::take(&mut *samples.lock().expect("samples"));
        sorted.sort_unstable();
        results.push(json!({
            "rate": rate,
            "delivered_per_second": sorted.len() as f64 / seconds as f64,
            "p50_ms": percentile(&sorted, 50.0),
            "p90_ms": percentile(&sorted, 90.0),
            "p99_ms": percentile(&sorted, 99.0),
            "p999_ms": percentile(&sorted, 99.9),
            "max_ms": percentile(&sorted, 100.0),
            "refused": refused.load(Ordering::Relaxed),
        }));
    }
    Ok(json!({"conversations": conversations, "seconds": seconds, "rates": results}))
}

fn random_unit() -> f64 {
    let bytes: [u8; 8] = palisade_crypto::random_bytes();
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// One client of the storm, back: reconnected (retrying with the client's back-off), resumed,
/// and holding every missed post. Its time, its attempts, and whether anything was off.
async fn come_back(
    gateway: &Gateway,
    session: &str,
    from: IpAddr,
    mut positions: Positions,
    missed: u64,
    started: Instant,
) -> Result<(Duration, u32, bool)> {
    let mut attempt = 0;
    let mut connection = loop {
        match gateway.open(session, from).await {
            Ok((connection, _)) => break connection,
            Err(_) if attempt < 20 => {
                tokio::time::sleep(backoff(attempt, random_unit())).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    for frame in positions.resubscribe() {
        connection.send(&frame).await?;
    }
    let (mut recovered, mut received, mut clean) = (false, 0, true);
    while !(recovered && received == missed) {
        let frame = connection.frame().await?;
        match &frame {
            ServerFrame::Subscribed { recovered: r, .. } => recovered = *r,
            ServerFrame::Message { .. } => received += 1,
            _ => {}
        }
        clean &= positions.observe(&frame).is_ok();
    }
    let took = started.elapsed();
    connection.abort();
    Ok((took, attempt, clean && received == missed))
}

pub(crate) async fn storm(
    common: &Common,
    population: &Population,
    clients: usize,
    missed: u64,
) -> Result<Value> {
    let gateway = Gateway::new(&population.base, &common.ca)?;
    let channel = format!("posts:{}", population.poster_id);
    let held = open_all(clients, |i| {
        subscribed(&gateway, population, i, common.spread, &channel)
    })
    .await?;
    let mut publisher = Publisher::poster(common, population)?;
    // Everyone loses the network at once; the posts go on without them.
    let mut away = Vec::new();
    for (i, (connection, positions)) in held.into_iter().enumerate() {
        connection.abort();
        away.push((i, positions));
    }
    for n in 0..missed {
        publisher.publish(n).await?;
    }
    let started = Instant::now();
    let gateway = Arc::new(gateway);
    let returns: Vec<_> = away
        .into_iter()
        .map(|(i, positions)| {
            let gateway = gateway.clone();
            let session = population.sessions[i % population.sessions.len()].clone();
            let from = source(i, common.spread);
            tokio::spawn(async move {
                come_back(&gateway, &session, from, positions, missed, started).await
            })
        })
        .collect();
    let mut times = Vec::new();
    let (mut retries, mut clean, mut failed) = (0u64, 0usize, 0usize);
    for task in returns {
        match task.await? {
            Ok((took, attempts, ok)) => {
                times.push(took.as_nanos() as u64);
                retries += u64::from(attempts);
                clean += usize::from(ok);
            }
            Err(_) => failed += 1,
        }
    }
    times.sort_unstable();
    Ok(json!({
        "clients": clients,
        "missed_posts": missed,
        "recovered_exactly": clean,
        "failed": failed,
        "retries": retries,
        "all_recovered_ms": percentile(&times, 100.0),
        "p50_ms": percentile(&times, 50.0),
        "p99_ms": percentile(&times, 99.0),
    }))
}
