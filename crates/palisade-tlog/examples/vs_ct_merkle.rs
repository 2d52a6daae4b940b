//! Palisade's Merkle tree against the `ct-merkle` crate on the same inputs, in one run
//! (bench/audit_vs_ct_merkle.sh): building the tree (leaf hashing included), inclusion and
//! consistency proof generation against the full tree, and inclusion proof verification.
//! Both are RFC 6962 trees, so their roots and proofs must be byte-identical; the run checks
//! that before timing anything. Prints one JSON line.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use palisade_tlog::merkle::{Tree, leaf_hash, verify_inclusion};
use sha2::Sha256;
use std::time::Instant;

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "{{\"action\":\"identity.login.succeeded\",\"at\":{},\"n\":{i},\"payload\":\"{}\"}}",
                1_790_000_000_000u64 + i as u64,
                "x".repeat(200)
            )
            .into_bytes()
        })
        .collect()
}

fn seconds(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let samples = 100_000;
    let data = entries(n);
    let picks: Vec<usize> = (0..samples).map(|i| (i * 7_919 + 13) % n).collect();

    let mut ours = Tree::default();
    let ours_build = seconds(|| {
        for e in &data {
            ours.push(leaf_hash(e));
        }
        ours.root(n as u64).unwrap();
    });
    let mut theirs = MemoryBackedTree::<Sha256, Vec<u8>>::new();
    let owned = data.clone();
    let theirs_build = seconds(|| {
        for e in owned {
            theirs.push(e);
        }
        theirs.root();
    });
    let root = ours.root(n as u64).unwrap();
    let their_root = theirs.root();
    assert_eq!(&root[..], &their_root.as_bytes()[..], "roots differ");
    for &i in picks.iter().take(1_000) {
        let a = ours.inclusion_proof(i as u64, n as u64).unwrap().concat();
        assert_eq!(
            a,
            theirs.prove_inclusion(i).as_bytes(),
            "inclusion proofs differ"
        );
        let m = i.max(1);
        let a = ours.consistency_proof(m as u64, n as u64).unwrap().concat();
        assert_eq!(
            a,
            theirs.prove_consistency(n - m).as_bytes(),
            "consistency proofs differ"
        );
    }

    let ours_inclusion = seconds(|| {
        for &i in &picks {
            std::hint::black_box(ours.inclusion_proof(i as u64, n as u64).unwrap());
        }
    });
    let theirs_inclusion = seconds(|| {
        for &i in &picks {
            std::hint::black_box(theirs.prove_inclusion(i));
        }
    });
    let ours_consistency = seconds(|| {
        for &i in &picks {
            std::hint::black_box(ours.consistency_proof(i.max(1) as u64, n as u64).unwrap());
        }
    });
    let theirs_consistency = seconds(|| {
        for &i in &picks {
            std::hint::black_box(theirs.prove_consistency(n - i.max(1)));
        }
    });
    let our_proofs: Vec<_> = picks
        .iter()
        .map(|&i| ours.inclusion_proof(i as u64, n as u64).unwrap())
        .collect();
    let their_proofs: Vec<_> = picks.iter().map(|&i| theirs.prove_inclusion(i)).collect();
    let ours_verify = seconds(|| {
        for (&i, proof) in picks.iter().zip(&our_proofs) {
            verify_inclusion(i as u64, n as u64, &leaf_hash(&data[i]), proof, &root).unwrap();
        }
    });
    let theirs_verify = seconds(|| {
        for (&i, proof) in picks.iter().zip(&their_proofs) {
            their_root
                .verify_inclusion(&data[i], i as u64, proof)
                .unwrap();
        }
    });

    let per_op_us = |s: f64| s / samples as f64 * 1e6;
    println!(
        "{}",
        serde_json::json!({
            "entries": n,
            "build_seconds": {"palisade": ours_build, "ct_merkle": theirs_build, "ratio": theirs_build / ours_build},
            "inclusion_proof_us": {"palisade": per_op_us(ours_inclusion), "ct_merkle": per_op_us(theirs_inclusion), "ratio": theirs_inclusion / ours_inclusion},
            "consistency_proof_us": {"palisade": per_op_us(ours_consistency), "ct_merkle": per_op_us(theirs_consistency), "ratio": theirs_consistency / ours_consistency},
            "inclusion_verify_us": {"palisade": per_op_us(ours_verify), "ct_merkle": per_op_us(theirs_verify), "ratio": theirs_verify / ours_verify},
        })
    );
}
