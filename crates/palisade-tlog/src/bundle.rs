//! C2SP tlog-proof bundles: everything needed to check offline that one entry is in the log —
//! its index, the inclusion proof and the signed checkpoint the proof leads to.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <N>
//! <base64 hash>            (zero or more, leaf's sibling first)
//!
//! <signed checkpoint note>
//! ```

use crate::merkle::{Hash, leaf_hash, parse_hash_lines, verify_inclusion};
use crate::note::{Checkpoint, NoteError, Verifier, open};
use data_encoding::BASE64;

const HEADER: &str = "c2sp.org/tlog-proof@v1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofBundle {
    /// Opaque and unauthenticated: never trusted by the verifier.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub proof: Vec<Hash>,
    /// The checkpoint exactly as the log issued it, signatures included.
    pub checkpoint: String,
}

fn canonical_u64(s: &str) -> Option<u64> {
    let n: u64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

impl ProofBundle {
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&BASE64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or(NoteError("proof bundle has no checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(NoteError("not a c2sp.org/tlog-proof@v1 bundle"));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(b64) = line.and_then(|l| l.strip_prefix("extra ")) {
            extra = Some(
                BASE64
                    .decode(b64.as_bytes())
                    .map_err(|_| NoteError("proof bundle extra data is not base64"))?,
            );
            line = lines.next();
        }
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .and_then(canonical_u64)
            .ok_or(NoteError("proof bundle has no valid index line"))?;
        let proof = parse_hash_lines(lines)
            .ok_or(NoteError("proof bundle hash is not 32 bytes of base64"))?;
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Checks that `entry` is at the bundle's index in the tree its checkpoint commits to, and
    /// that the checkpoint is signed by one of `trusted`; returns the checkpoint.
    pub fn verify(&self, entry: &[u8], trusted: &[Verifier]) -> Result<Checkpoint, NoteError> {
        let (text, _) = open(&self.checkpoint, trusted)?;
        let checkpoint = Checkpoint::parse(text)?;
        verify_inclusion(
            self.index,
            checkpoint.size,
            &leaf_hash(entry),
            &self.proof,
            &checkpoint.root,
        )
        .map_err(|_| NoteError("the entry is not at this index of the checkpoint's tree"))?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Tree, leaf_hash};
    use crate::note::Signer;

    #[test]
    fn bundles_round_trip_verify_and_reject_tampering() {
        let signer = Signer::from_skey(&Signer::generate("log.example").unwrap()).unwrap();
        let trusted = [Verifier::from_vkey(&signer.vkey()).unwrap()];
        let entries: Vec<String> = (0..11).map(|i| format!("entry {i}")).collect();
        let mut tree = Tree::default();
        for e in &entries {
            tree.push(leaf_hash(e.as_bytes()));
        }
        let checkpoint = Checkpoint {
            origin: "log.example".into(),
            size: 11,
            root: tree.root(11).unwrap(),
            extensions: vec![],
        };
        let note = signer.sign(&checkpoint.to_text()).unwrap();
        let bundle = ProofBundle {
            extra: Some(b"hint".to_vec()),
            index: 6,
            proof: tree.inclusion_proof(6, 11).unwrap(),
            checkpoint: note.clone(),
        };
        let text = bundle.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra aGludA==\nindex 6\n"));
        let parsed = ProofBundle::parse(&text).unwrap();
        assert_eq!(parsed, bundle);
        assert_eq!(parsed.verify(b"entry 6", &trusted).unwrap().size, 11);

        // Another entry, another index, a flipped proof hash or a foreign key all fail.
        assert!(parsed.verify(b"entry 5", &trusted).is_err());
        let moved = ProofBundle {
            index: 5,
            ..parsed.clone()
        };
        assert!(moved.verify(b"entry 6", &trusted).is_err());
        let mut flipped = parsed.clone();
        flipped.proof[1][0] ^= 1;
        assert!(flipped.verify(b"entry 6", &trusted).is_err());
        let stranger = Signer::from_skey(&Signer::generate("log.example").unwrap()).unwrap();
        assert!(
            parsed
                .verify(
                    b"entry 6",
                    &[Verifier::from_vkey(&stranger.vkey()).unwrap()]
                )
                .is_err()
        );

        // Malformed bundles are refused.
        for bad in [
            text.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
            text.replace("index 6", "index 06"),
            text.replace("index 6\n", ""),
            format!("{HEADER}\nindex 0\nAAAA\n\n{note}"),
        ] {
            assert!(ProofBundle::parse(&bad).is_err(), "{bad}");
        }
        // The smallest valid bundle: no extra, no hashes.
        let single = ProofBundle::parse(&format!("{HEADER}\nindex 0\n\n{note}")).unwrap();
        assert!(single.proof.is_empty() && single.extra.is_none());
    }
}
