//! Property test (AUD-3): for random append sequences, every inclusion and consistency proof the
//! log's tree produces verifies against its roots, and any single mutation of a proof — a
//! flipped bit, a dropped or an extra element, another index — is refused. (The tree size is
//! not itself proven by an inclusion proof; the signed checkpoint binds it to the root.)

use palisade_tlog::merkle::{Hash, Tree, leaf_hash, verify_consistency, verify_inclusion};
use proptest::prelude::*;

/// Entries are numbered so that no two are equal (equal leaves would make proofs for one valid
/// for the other, which is correct but not what the mutations test).
fn leaf(index: usize, entry: &[u8]) -> Hash {
    leaf_hash(&[&index.to_be_bytes()[..], entry].concat())
}

fn tree_of(entries: &[Vec<u8>]) -> Tree {
    let mut tree = Tree::default();
    for (i, e) in entries.iter().enumerate() {
        tree.push(leaf(i, e));
    }
    tree
}

fn mutations(proof: &[Hash], bit: usize) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    if !proof.is_empty() {
        let mut flipped = proof.to_vec();
        let i = bit % proof.len();
        flipped[i][(bit / 8) % 32] ^= 1 << (bit % 8);
        out.push(flipped);
        out.push(proof[..proof.len() - 1].to_vec());
    }
    let mut longer = proof.to_vec();
    longer.push([0u8; 32]);
    out.push(longer);
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(
        entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 1..300),
        pick in any::<u64>(),
        bit in any::<usize>(),
    ) {
        let tree = tree_of(&entries);
        let n = tree.size();
        let size = 1 + pick % n;
        let index = (pick / n) % size;
        let root = tree.root(size).unwrap();
        let leaf = leaf(index as usize, &entries[index as usize]);
        let proof = tree.inclusion_proof(index, size).unwrap();
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_ok());
        for bad in mutations(&proof, bit) {
            prop_assert!(verify_inclusion(index, size, &leaf, &bad, &root).is_err());
        }
        if size > 1 {
            let other = (index + 1) % size;
            prop_assert!(verify_inclusion(other, size, &leaf, &proof, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(
        entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 2..300),
        pick in any::<u64>(),
        bit in any::<usize>(),
    ) {
        let tree = tree_of(&entries);
        let n = tree.size();
        let size2 = 2 + pick % (n - 1);
        let size1 = 1 + (pick / n) % (size2 - 1);
        let (root1, root2) = (tree.root(size1).unwrap(), tree.root(size2).unwrap());
        let proof = tree.consistency_proof(size1, size2).unwrap();
        prop_assert!(verify_consistency(size1, size2, &root1, &root2, &proof).is_ok());
        for bad in mutations(&proof, bit) {
            prop_assert!(verify_consistency(size1, size2, &root1, &root2, &bad).is_err());
        }
        // A rewritten history (one changed entry before size1) is never consistent.
        let mut forged = entries.clone();
        forged[(pick % size1) as usize].push(0xff);
        let forged_root = tree_of(&forged).root(size2).unwrap();
        prop_assert!(verify_consistency(size1, size2, &root1, &forged_root, &proof).is_err());
    }
}
