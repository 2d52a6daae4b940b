//! RFC 6962 / RFC 9162 Merkle tree hashing with inclusion and consistency proofs (AUD-3).
//!
//! Hashes are SHA-256 with domain separation: a leaf is `SHA-256(0x00 ‖ data)`, an interior node
//! `SHA-256(0x01 ‖ left ‖ right)`, and the empty tree's root is `SHA-256("")`. Proof generation
//! follows RFC 6962 §2.1.1–2.1.2 (PATH and PROOF); verification follows RFC 9162 §2.1.3.2 and
//! §2.1.4.2, treating a proof as a list of 32-byte elements so that an extra, missing or
//! mis-sized element is always detected.

use aws_lc_rs::digest::{Context, SHA256};

pub type Hash = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// Index or sizes outside what the tree can hold.
    OutOfRange,
    /// A proof element, leaf hash or root that is not 32 bytes.
    Malformed,
    /// More or fewer elements than the tree shape requires.
    WrongLength,
    /// The proof does not lead to the given root(s).
    Mismatch,
}

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    finish(ctx)
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One call on a stack buffer: node hashing is the inner loop of every proof.
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&SHA256, &buf).as_ref());
    out
}

pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The largest power of two strictly smaller than `n` (n ≥ 2): where RFC 6962 splits a tree.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[n]) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path for leaf `index`, leaf to root.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let mth = |lo: u64, hi: u64| root(&leaves[lo as usize..hi as usize]);
    inclusion_proof_with(&mth, leaves.len() as u64, index)
}

/// PROOF(m, D[n]): proves the tree of the first `size1` leaves is a prefix of `leaves`.
pub fn consistency_proof(leaves: &[Hash], size1: u64) -> Result<Vec<Hash>, ProofError> {
    let mth = |lo: u64, hi: u64| root(&leaves[lo as usize..hi as usize]);
    consistency_proof_with(&mth, leaves.len() as u64, size1)
}

/// MTH of the leaves in `[lo, hi)`: how proof generation reads a tree, so the same algorithm
/// serves a slice of leaves and a [`Tree`] of cached subtrees.
type SubtreeRoot<'a> = dyn Fn(u64, u64) -> Hash + 'a;

fn inclusion_proof_with(mth: &SubtreeRoot, size: u64, index: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let mut proof = Vec::new();
    path(mth, 0, size, index, &mut proof);
    Ok(proof)
}

fn path(mth: &SubtreeRoot, lo: u64, hi: u64, m: u64, out: &mut Vec<Hash>) {
    let n = hi - lo;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(mth, lo, lo + k, m, out);
        out.push(mth(lo + k, hi));
    } else {
        path(mth, lo + k, hi, m - k, out);
        out.push(mth(lo, lo + k));
    }
}

fn consistency_proof_with(
    mth: &SubtreeRoot,
    size2: u64,
    size1: u64,
) -> Result<Vec<Hash>, ProofError> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::OutOfRange);
    }
    let mut proof = Vec::new();
    subproof(mth, 0, size2, size1, true, &mut proof);
    Ok(proof)
}

fn subproof(mth: &SubtreeRoot, lo: u64, hi: u64, m: u64, complete: bool, out: &mut Vec<Hash>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(mth(lo, hi));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(mth, lo, lo + k, m, complete, out);
        out.push(mth(lo + k, hi));
    } else {
        subproof(mth, lo + k, hi, m - k, false, out);
        out.push(mth(lo, lo + k));
    }
}

/// An append-only tree that keeps the hash of every complete subtree, level by level. Every
/// left branch of RFC 6962's recursion is such a subtree, so a proof against any earlier size
/// costs O(log² n) hashes at most instead of rehashing the log: this is what serves proofs of
/// a large log in microseconds. It holds about two hashes per leaf.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[h][i]` is the root of leaves `[i·2^h, (i+1)·2^h)`; `levels[0]` are the leaves.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(index as usize).copied()
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut level = 0;
        let mut node = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(node);
            let i = row.len() - 1;
            if i.is_multiple_of(2) {
                return;
            }
            node = node_hash(&row[i - 1], &row[i]);
            level += 1;
        }
    }

    fn subtree_root(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            return self.levels[n.trailing_zeros() as usize][(lo / n) as usize];
        }
        let k = split(n);
        node_hash(
            &self.subtree_root(lo, lo + k),
            &self.subtree_root(lo + k, hi),
        )
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        if size > self.size() {
            return Err(ProofError::OutOfRange);
        }
        Ok(self.subtree_root(0, size))
    }

    /// Inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        if size > self.size() {
            return Err(ProofError::OutOfRange);
        }
        inclusion_proof_with(&|lo, hi| self.subtree_root(lo, hi), size, index)
    }

    /// Consistency proof between the trees of the first `size1` and `size2` leaves.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        if size2 > self.size() {
            return Err(ProofError::OutOfRange);
        }
        consistency_proof_with(&|lo, hi| self.subtree_root(lo, hi), size2, size1)
    }
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first. Appending
/// is amortised O(1) and the root is O(log n), so a log can publish a new root after every batch
/// without rehashing its history.
#[derive(Debug, Clone, Default)]
pub struct CompactRange {
    size: u64,
    /// (height, hash) of each perfect subtree, heights strictly decreasing.
    nodes: Vec<(u32, Hash)>,
}

impl CompactRange {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn append(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.nodes.last() {
            if height != node.0 {
                break;
            }
            self.nodes.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.nodes.push(node);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Parses proof lines, one base64 hash each (the text form of proofs in C2SP formats).
pub fn parse_hash_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Option<Vec<Hash>> {
    lines
        .map(|l| {
            data_encoding::BASE64
                .decode(l.as_bytes())
                .ok()
                .and_then(|h| Hash::try_from(h).ok())
        })
        .collect()
}

fn to_hash(bytes: &[u8]) -> Result<Hash, ProofError> {
    bytes.try_into().map_err(|_| ProofError::Malformed)
}

fn to_hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, ProofError> {
    proof.iter().map(|p| to_hash(p.as_ref())).collect()
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let leaf = to_hash(leaf)?;
    let root = to_hash(root)?;
    let computed = root_from_inclusion(index, size, leaf, proof)?;
    if computed == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// RFC 9162 §2.1.3.2: the root an inclusion proof leads to.
fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: Hash,
    proof: &[impl AsRef<[u8]>],
) -> Result<Hash, ProofError> {
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        let p = &to_hash(p.as_ref())?;
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Verifies that the tree of `size1` leaves with `root1` is a prefix of the tree of `size2`
/// leaves with `root2`. Following the common convention (and the shared test vectors), a
/// proof from the empty tree is meaningless and refused, and equal sizes need an empty proof
/// and equal roots.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[impl AsRef<[u8]>],
) -> Result<(), ProofError> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::OutOfRange);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let root1 = to_hash(root1)?;
    let root2 = to_hash(root2)?;
    let mut proof = to_hashes(proof)?;
    // RFC 9162 §2.1.4.2 step 2: when size1 is a power of two, the first tree's root is the
    // starting node and is not part of the proof.
    if size1.is_power_of_two() {
        proof.insert(0, root1);
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr == root1 && sr == root2 {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn every_proof_of_small_trees_verifies_and_mutations_fail() {
        for n in 1..=40usize {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n as u64 {
                let p = inclusion_proof(&l, i).unwrap();
                assert_eq!(
                    verify_inclusion(i, n as u64, &l[i as usize], &p, &r),
                    Ok(()),
                    "n={n} i={i}"
                );
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(verify_inclusion(i, n as u64, &l[i as usize], &bad, &r).is_err());
                    let mut longer = p.clone();
                    longer.push(*first);
                    assert!(verify_inclusion(i, n as u64, &l[i as usize], &longer, &r).is_err());
                    assert!(verify_inclusion(i, n as u64, &l[i as usize], &p[1..], &r).is_err());
                }
            }
            for m in 1..=n as u64 {
                let p = consistency_proof(&l, m).unwrap();
                let r1 = root(&l[..m as usize]);
                assert_eq!(
                    verify_consistency(m, n as u64, &r1, &r, &p),
                    Ok(()),
                    "m={m} n={n}"
                );
                if !p.is_empty() {
                    let mut bad = p.clone();
                    let last = bad.len() - 1;
                    bad[last][31] ^= 1;
                    assert!(verify_consistency(m, n as u64, &r1, &r, &bad).is_err());
                }
            }
        }
    }

    #[test]
    fn compact_range_roots_match_the_full_computation() {
        let l = leaves(70);
        let mut range = CompactRange::default();
        assert_eq!(range.root(), empty_root());
        for (i, leaf) in l.iter().enumerate() {
            range.append(*leaf);
            assert_eq!(range.size(), i as u64 + 1);
            assert_eq!(range.root(), root(&l[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn cached_tree_proofs_equal_the_reference_at_every_size() {
        let l = leaves(70);
        let mut tree = Tree::default();
        for leaf in &l {
            tree.push(*leaf);
        }
        for n in 1..=70u64 {
            let prefix = &l[..n as usize];
            assert_eq!(tree.root(n), Ok(root(prefix)), "n={n}");
            for i in 0..n {
                assert_eq!(tree.inclusion_proof(i, n), inclusion_proof(prefix, i));
            }
            for m in 1..=n {
                assert_eq!(tree.consistency_proof(m, n), consistency_proof(prefix, m));
            }
        }
        assert_eq!(tree.inclusion_proof(0, 71), Err(ProofError::OutOfRange));
    }

    #[test]
    fn out_of_range_is_refused() {
        let l = leaves(4);
        assert_eq!(inclusion_proof(&l, 4), Err(ProofError::OutOfRange));
        assert_eq!(consistency_proof(&l, 0), Err(ProofError::OutOfRange));
        let r = root(&l);
        let none: [Hash; 0] = [];
        assert_eq!(
            verify_consistency(0, 4, &empty_root(), &r, &none),
            Err(ProofError::OutOfRange)
        );
        assert_eq!(
            verify_inclusion(5, 4, &l[0], &none, &r),
            Err(ProofError::OutOfRange)
        );
    }
}
