//! The audit log at scale (bench/audit_scale.sh). Writes a log of N entries (10 million by
//! default) into a fresh SQLite file in the log's own layout — entries shaped like real ones,
//! with a signed checkpoint every 100,000 — then measures, and prints as one JSON line:
//! - opening it (reading every leaf hash and rebuilding the in-memory tree);
//! - inclusion and consistency proof generation against the full size, warm;
//! - offline verification of inclusion proofs on one core;
//! - a full `verify` of the stored log (every entry rehashed, every checkpoint checked), from
//!   the database and from an exported directory.

use palisade_audit::log::AuditLog;
use palisade_audit::verify::{Trust, load, load_dir, verify};
use palisade_tlog::merkle::{CompactRange, leaf_hash, verify_inclusion};
use palisade_tlog::note::{Checkpoint, Signer, Verifier};
use std::time::Instant;

const CHECKPOINT_EVERY: u64 = 100_000;
const ROWS_PER_INSERT: u64 = 500;
const SAMPLES: usize = 100_000;

/// A cheap deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn entry(i: u64, rng: &mut Rng) -> String {
    // The shape of a real leaf: pseudonyms, a trace id and a sealed payload of ~120 bytes.
    let sealed: String = (0..10).map(|_| format!("{:016x}", rng.next())).collect();
    format!(
        "{{\"action\":\"identity.login.succeeded\",\"actor\":\"{:032x}\",\"at\":{},\"client\":null,\
         \"outcome\":\"success\",\"payload\":{{\"key\":\"k{:06}\",\"sealed\":\"{sealed}\"}},\
         \"target\":null,\"tenant\":\"default\",\"trace_id\":\"{:032x}\"}}",
        rng.next() as u128,
        1_790_000_000_000u64 + i,
        i % 50_000,
        (rng.next() as u128) << 64 | rng.next() as u128
    )
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

async fn build(db: &palisade_store::Db, signer: &Signer, total: u64) {
    let mut rng = Rng(0x5eed);
    let mut range = CompactRange::default();
    let mut tx = db.begin().await.unwrap();
    let mut next = 0u64;
    while next < total {
        let n = ROWS_PER_INSERT.min(total - next);
        let placeholders: Vec<String> = (0..n)
            .map(|r| format!("(${}, ${}, ${}, 0)", r * 3 + 1, r * 3 + 2, r * 3 + 3))
            .collect();
        let sql = format!(
            "INSERT INTO audit_leaves (idx, leaf_hash, entry, created_at) VALUES {}",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for i in next..next + n {
            let e = entry(i, &mut rng);
            let h = leaf_hash(e.as_bytes());
            range.append(h);
            query = query
                .bind(i as i64)
                .bind(data_encoding::HEXLOWER.encode(&h))
                .bind(e);
        }
        query.execute(&mut *tx).await.unwrap();
        next += n;
        if next.is_multiple_of(CHECKPOINT_EVERY) || next == total {
            let checkpoint = Checkpoint {
                origin: "bench/log".into(),
                size: next,
                root: range.root(),
                extensions: vec![],
            };
            sqlx::query(
                "INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, 0)",
            )
            .bind(next as i64)
            .bind(signer.sign(&checkpoint.to_text()).unwrap())
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            tx = db.begin().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

#[tokio::main]
async fn main() {
    let total: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let dir = std::env::args()
        .nth(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("palisade-audit-scale"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("log-{total}.db"));
    let skey_path = dir.join(format!("log-{total}.key"));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    // The built log is kept between runs: building 10M entries takes a few minutes.
    let fresh = !path.exists() || !skey_path.exists();
    if fresh {
        let _ = std::fs::remove_file(&path);
        std::fs::write(&skey_path, Signer::generate("bench/log").unwrap()).unwrap();
    }
    let skey = std::fs::read_to_string(&skey_path).unwrap();
    let signer = Signer::from_skey(&skey).unwrap();
    let db = palisade_store::Db::connect(&url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let mut build_seconds = None;
    if fresh {
        let t = Instant::now();
        build(&db, &signer, total).await;
        build_seconds = Some(t.elapsed().as_secs_f64());
    }

    let t = Instant::now();
    let log = AuditLog::open(
        db.clone(),
        Signer::from_skey(&skey).unwrap(),
        "bench/log".into(),
        palisade_cluster::Bus::in_process(),
    )
    .await
    .unwrap();
    let open_seconds = t.elapsed().as_secs_f64();
    assert_eq!(log.size(), total);

    let mut rng = Rng(42);
    let indexes: Vec<u64> = (0..SAMPLES).map(|_| rng.next() % total).collect();
    // Warm-up pass, then the measured one.
    for &i in indexes.iter().take(10_000) {
        log.inclusion_proof(i, total).unwrap();
    }
    let mut inclusion_us = Vec::with_capacity(SAMPLES);
    let mut proofs = Vec::with_capacity(SAMPLES);
    for &i in &indexes {
        let t = Instant::now();
        let proof = log.inclusion_proof(i, total).unwrap();
        inclusion_us.push(t.elapsed().as_secs_f64() * 1e6);
        proofs.push(proof);
    }
    inclusion_us.sort_by(f64::total_cmp);
    let mut consistency_us: Vec<f64> = indexes
        .iter()
        .take(10_000)
        .map(|&m| {
            let t = Instant::now();
            log.consistency_proof(m.max(1), total).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    consistency_us.sort_by(f64::total_cmp);

    let (note, _) = log.latest().unwrap();
    let text = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
    let checkpoint = Checkpoint::parse(&text).unwrap();
    let leaves: Vec<_> = indexes.iter().map(|&i| log.leaf_hash(i).unwrap()).collect();
    let t = Instant::now();
    for ((&i, proof), leaf) in indexes.iter().zip(&proofs).zip(&leaves) {
        verify_inclusion(i, total, leaf, proof, &checkpoint.root).unwrap();
    }
    let verifications_per_second = SAMPLES as f64 / t.elapsed().as_secs_f64();
    drop(log);

    let trust = Trust {
        log: vec![Verifier::from_vkey(&signer.vkey()).unwrap()],
        witnesses: vec![],
    };
    let t = Instant::now();
    let report = verify(load(&db).await.unwrap(), &trust, |_, _| {})
        .await
        .unwrap();
    let verify_seconds = t.elapsed().as_secs_f64();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.entries, total);

    let export_dir = dir.join(format!("export-{total}"));
    let _ = std::fs::remove_dir_all(&export_dir);
    let t = Instant::now();
    palisade_audit::verify::export(&db, &export_dir)
        .await
        .unwrap();
    let export_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = verify(load_dir(&export_dir).unwrap(), &trust, |_, _| {})
        .await
        .unwrap();
    let verify_dir_seconds = t.elapsed().as_secs_f64();
    assert!(
        report.ok && report.entries == total,
        "{:?}",
        report.problems
    );
    let _ = std::fs::remove_dir_all(&export_dir);

    println!(
        "{}",
        serde_json::json!({
            "entries": total,
            "database_bytes": std::fs::metadata(&path).unwrap().len(),
            "build_seconds": build_seconds,
            "open_seconds": open_seconds,
            "inclusion_proof_us": {"p50": percentile(&inclusion_us, 50), "p99": percentile(&inclusion_us, 99)},
            "consistency_proof_us": {"p50": percentile(&consistency_us, 50), "p99": percentile(&consistency_us, 99)},
            "inclusion_verifications_per_second_one_core": verifications_per_second,
            "full_verify_seconds": verify_seconds,
            "export_seconds": export_seconds,
            "full_verify_from_export_seconds": verify_dir_seconds,
            "checkpoints_verified": report.checkpoints,
        })
    );
}
