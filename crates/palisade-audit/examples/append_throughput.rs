//! Durable appends per second, in process (bench/audit_append.sh): N concurrent appenders on a
//! fresh SQLite log (WAL, synchronous=FULL); every append is acknowledged only after its batch
//! is committed. Prints one JSON line.

use palisade_audit::log::AuditLog;
use palisade_tlog::note::Signer;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let writers: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let dir = std::env::temp_dir().join(format!("palisade-append-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let db = palisade_store::Db::connect(&url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let signer = Signer::from_skey(&Signer::generate("bench/log").unwrap()).unwrap();
    let log = AuditLog::open_single_node(
        db,
        signer,
        "bench/log".into(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for i in (w..total).step_by(writers) {
                let t = Instant::now();
                log.append(format!("{{\"action\":\"bench\",\"n\":{i}}}"))
                    .await
                    .unwrap();
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            }
            latencies
        });
    }
    let mut latencies = Vec::with_capacity(total);
    while let Some(r) = tasks.join_next().await {
        latencies.extend(r.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "{{\"entries\":{total},\"writers\":{writers},\"seconds\":{elapsed:.3},\"appends_per_second\":{:.0},\"append_to_checkpoint_p99_ms\":{p99:.2}}}",
        total as f64 / elapsed
    );
    let _ = std::fs::remove_dir_all(&dir);
}
