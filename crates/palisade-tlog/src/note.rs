//! C2SP signed notes and tlog checkpoints (AUD-4).
//!
//! A signed note is UTF-8 text ending in a newline, a blank line, then one line per signature:
//! `— <key name> <base64(key hash ‖ signature)>`. A key is named by its name and a 32-bit hash
//! `SHA-256(name ‖ "\n" ‖ type ‖ public key)[:4]`; type 0x01 is Ed25519. Keys travel as
//! verifier strings `<name>+<hash hex>+<base64(type ‖ public key)>` and signer strings
//! `PRIVATE+KEY+<name>+<hash hex>+<base64(type ‖ seed)>`. A checkpoint is a note whose text is
//! the log's origin, the tree size and the base64 root hash, one per line.
//!
//! Witnesses cosign with type 0x04 keys (C2SP tlog-cosignature, `cosignature/v1`): the blob is
//! an 8-byte big-endian timestamp then an Ed25519 signature over
//! `cosignature/v1\ntime <timestamp>\n` followed by the note text.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use data_encoding::BASE64;

const ALG_ED25519: u8 = 0x01;
const ALG_COSIGNATURE_V1: u8 = 0x04;
const SIGNATURE_PREFIX: &str = "— ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteError(pub &'static str);

impl std::fmt::Display for NoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

fn key_hash(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut data = Vec::with_capacity(name.len() + 2 + public_key.len());
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(alg);
    data.extend_from_slice(public_key);
    let h = palisade_crypto::sha256(&data);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('+')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Splits `<name>+<hash hex>+<base64 key>`.
fn parse_key(s: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    // Names cannot contain '+', base64 keys can: split from the left.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError("key is not name+hash+key"));
    };
    if !valid_name(name) || hash.len() != 8 {
        return Err(NoteError("key name or hash is malformed"));
    }
    let hash = u32::from_str_radix(hash, 16).map_err(|_| NoteError("key hash is not hex"))?;
    let key = BASE64
        .decode(key.as_bytes())
        .map_err(|_| NoteError("key is not base64"))?;
    Ok((name, hash, key))
}

/// What a key signs: notes directly (a log's checkpoints) or timestamped cosignatures (a
/// witness's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Cosignature,
}

impl KeyKind {
    fn from_alg(alg: u8) -> Result<Self, NoteError> {
        match alg {
            ALG_ED25519 => Ok(Self::Ed25519),
            ALG_COSIGNATURE_V1 => Ok(Self::Cosignature),
            _ => Err(NoteError(
                "only Ed25519 and cosignature/v1 keys are supported",
            )),
        }
    }

    fn alg(self) -> u8 {
        match self {
            Self::Ed25519 => ALG_ED25519,
            Self::Cosignature => ALG_COSIGNATURE_V1,
        }
    }
}

/// The bytes a cosignature covers.
fn cosigned_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// Verifies signatures by one Ed25519 key, of either kind.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub name: String,
    pub hash: u32,
    pub kind: KeyKind,
    public_key: [u8; 32],
}

impl Verifier {
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, hash, key) = parse_key(vkey)?;
        let (&alg, public_key) = key
            .split_first()
            .ok_or(NoteError("verifier key is empty"))?;
        let kind = KeyKind::from_alg(alg)?;
        let public_key: [u8; 32] = public_key
            .try_into()
            .map_err(|_| NoteError("Ed25519 public keys are 32 bytes"))?;
        if key_hash(name, alg, &public_key) != hash {
            return Err(NoteError("verifier key hash does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            hash,
            kind,
            public_key,
        })
    }

    /// Checks a signature blob (after the key hash) over the note text.
    fn verify(&self, text: &str, blob: &[u8]) -> bool {
        let key = UnparsedPublicKey::new(&ED25519, &self.public_key);
        match self.kind {
            KeyKind::Ed25519 => key.verify(text.as_bytes(), blob).is_ok(),
            KeyKind::Cosignature => {
                let Some((time, signature)) = blob.split_first_chunk::<8>() else {
                    return false;
                };
                let timestamp = u64::from_be_bytes(*time);
                timestamp < 1 << 63
                    && key
                        .verify(&cosigned_message(timestamp, text), signature)
                        .is_ok()
            }
        }
    }
}

/// Signs notes with one Ed25519 key (Ed25519 is deterministic: the same text always gets the
/// same signature), or cosigns them when it is a witness key.
pub struct Signer {
    pub name: String,
    pub hash: u32,
    pub kind: KeyKind,
    keypair: Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError("signer key must start with PRIVATE+KEY+"))?;
        let (name, hash, key) = parse_key(rest)?;
        let (&alg, seed) = key.split_first().ok_or(NoteError("signer key is empty"))?;
        let kind = KeyKind::from_alg(alg)?;
        if seed.len() != 32 {
            return Err(NoteError("Ed25519 seeds are 32 bytes"));
        }
        let keypair =
            Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| NoteError("bad Ed25519 seed"))?;
        if key_hash(name, alg, keypair.public_key().as_ref()) != hash {
            return Err(NoteError("signer key hash does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            hash,
            kind,
            keypair,
        })
    }

    /// A new random key named `name`, as a signer string.
    pub fn generate(name: &str) -> Result<String, NoteError> {
        Self::generate_kind(name, KeyKind::Ed25519)
    }

    pub fn generate_kind(name: &str, kind: KeyKind) -> Result<String, NoteError> {
        if !valid_name(name) {
            return Err(NoteError("key names cannot contain '+' or white space"));
        }
        let seed = palisade_crypto::random_bytes::<32>();
        let keypair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError("bad Ed25519 seed"))?;
        let hash = key_hash(name, kind.alg(), keypair.public_key().as_ref());
        let mut encoded = vec![kind.alg()];
        encoded.extend_from_slice(&seed);
        Ok(format!(
            "PRIVATE+KEY+{name}+{hash:08x}+{}",
            BASE64.encode(&encoded)
        ))
    }

    pub fn vkey(&self) -> String {
        let mut encoded = vec![self.kind.alg()];
        encoded.extend_from_slice(self.keypair.public_key().as_ref());
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.hash,
            BASE64.encode(&encoded)
        )
    }

    /// The signed note for `text` (which must end with a newline).
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        Ok(format!("{text}\n{}", self.signature_line(text, 0)?))
    }

    /// One signature line (`— name base64\n`) over `text`. A cosignature carries
    /// `timestamp` (Unix seconds); a plain signature ignores it.
    pub fn signature_line(&self, text: &str, timestamp: u64) -> Result<String, NoteError> {
        check_text(text)?;
        let mut blob = self.hash.to_be_bytes().to_vec();
        match self.kind {
            KeyKind::Ed25519 => blob.extend_from_slice(self.keypair.sign(text.as_bytes()).as_ref()),
            KeyKind::Cosignature => {
                if timestamp >= 1 << 63 {
                    return Err(NoteError("cosignature timestamp out of range"));
                }
                blob.extend_from_slice(&timestamp.to_be_bytes());
                let message = cosigned_message(timestamp, text);
                blob.extend_from_slice(self.keypair.sign(&message).as_ref());
            }
        }
        Ok(format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            BASE64.encode(&blob)
        ))
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError("note text must end with a newline"));
    }
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(NoteError("note text cannot contain a blank line"));
    }
    Ok(())
}

/// Opens a signed note: returns its text and the names of the known keys that signed it.
/// Signatures by unknown keys are ignored; a note signed by no known key, a malformed
/// signature line, or a bad signature by a known key is an error.
pub fn open<'a>(
    note: &'a str,
    verifiers: &[Verifier],
) -> Result<(&'a str, Vec<String>), NoteError> {
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError("note has no signature block"))?;
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    check_text(text)?;
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError("signature block is malformed"));
    }
    let mut verified = Vec::new();
    for line in signatures.lines() {
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(NoteError("signature line is malformed"))?;
        let (name, blob) = rest
            .split_once(' ')
            .ok_or(NoteError("signature line is malformed"))?;
        let blob = BASE64
            .decode(blob.as_bytes())
            .map_err(|_| NoteError("signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError("signature is too short"));
        }
        let hash = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let Some(v) = verifiers.iter().find(|v| v.name == name && v.hash == hash) else {
            continue;
        };
        if !v.verify(text, &blob[4..]) {
            return Err(NoteError("a known key's signature does not verify"));
        }
        verified.push(v.name.clone());
    }
    if verified.is_empty() {
        return Err(NoteError("no signature by a known key"));
    }
    Ok((text, verified))
}

/// The body of a tlog checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: crate::merkle::Hash,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text
            .strip_suffix('\n')
            .ok_or(NoteError("checkpoint must end with a newline"))?
            .split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError("checkpoint has no origin"))?;
        let size = lines.next().ok_or(NoteError("checkpoint has no size"))?;
        if size.is_empty()
            || (size.len() > 1 && size.starts_with('0'))
            || !size.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(NoteError("checkpoint size is not a canonical decimal"));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError("checkpoint size is out of range"))?;
        let root = lines
            .next()
            .ok_or(NoteError("checkpoint has no root hash"))?;
        let root = BASE64
            .decode(root.as_bytes())
            .map_err(|_| NoteError("root hash is not base64"))?;
        let root = root
            .try_into()
            .map_err(|_| NoteError("root hash is not 32 bytes"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: lines.map(str::to_owned).collect(),
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(&self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip() {
        let skey = Signer::generate("log.example/test").unwrap();
        let signer = Signer::from_skey(&skey).unwrap();
        let verifier = Verifier::from_vkey(&signer.vkey()).unwrap();
        let note = signer.sign("hello\nworld\n").unwrap();
        let (text, names) = open(&note, std::slice::from_ref(&verifier)).unwrap();
        assert_eq!(
            (text, names),
            ("hello\nworld\n", vec!["log.example/test".to_string()])
        );
        let tampered = note.replace("world", "w0rld");
        assert!(open(&tampered, std::slice::from_ref(&verifier)).is_err());
        let other = Verifier::from_vkey(
            &Signer::from_skey(&Signer::generate("other").unwrap())
                .unwrap()
                .vkey(),
        )
        .unwrap();
        assert!(open(&note, &[other]).is_err(), "no known key");
        assert!(signer.sign("no newline").is_err());
        assert!(signer.sign("blank\n\nline\n").is_err());
    }

    /// A public cosignature/v1 known-answer vector (sigsum-go's checkpoint tests): the witness
    /// key's seed is 0x11 then 31 zero bytes.
    #[test]
    fn cosignature_v1_matches_the_published_vector() {
        let body = "example.org/log\n10\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let line = "— example.org/witness ys8uUAAAAAAAAATSftMzceM8zssdZ9jin9SjwIxzx9iADMf63VqirX2hafol9RsqNqbofIz0LVRqHXI2kpEBSki5RTXFtxz1vo9+Cg==\n";
        let vkey = "example.org/witness+cacf2e50+BGbguFjkYqYJ5m/nE3DIFtiEb/ED1UmaIqf+w3/bxCSn";
        let mut seed = vec![ALG_COSIGNATURE_V1, 0x11];
        seed.resize(33, 0);
        let signer = Signer::from_skey(&format!(
            "PRIVATE+KEY+example.org/witness+cacf2e50+{}",
            BASE64.encode(&seed)
        ))
        .unwrap();
        assert_eq!(signer.vkey(), vkey);
        assert_eq!(signer.signature_line(body, 1234).unwrap(), line);

        let witness = Verifier::from_vkey(vkey).unwrap();
        assert_eq!(witness.kind, KeyKind::Cosignature);
        let note = format!("{body}\n{line}");
        let (_, names) = open(&note, std::slice::from_ref(&witness)).unwrap();
        assert_eq!(names, ["example.org/witness"]);
        // The timestamp is signed: changing it breaks the cosignature.
        let encoded = line.trim_end().rsplit_once(' ').unwrap().1;
        let mut blob = BASE64.decode(encoded.as_bytes()).unwrap();
        blob[11] ^= 1;
        let forged = format!("{body}\n— example.org/witness {}\n", BASE64.encode(&blob));
        assert!(open(&forged, std::slice::from_ref(&witness)).is_err());
        // A cosignature does not verify as a plain signature by the same key.
        let plain = format!(
            "example.org/witness+{:08x}+{}",
            key_hash("example.org/witness", ALG_ED25519, &witness.public_key),
            BASE64.encode(&[&[ALG_ED25519][..], &witness.public_key].concat())
        );
        let as_plain = Verifier::from_vkey(&plain).unwrap();
        assert!(open(&note, &[as_plain]).is_err());
    }

    #[test]
    fn checkpoints_round_trip_and_reject_non_canonical_sizes() {
        let c = Checkpoint {
            origin: "log.example".into(),
            size: 42,
            root: [7u8; 32],
            extensions: vec!["ext".into()],
        };
        assert_eq!(Checkpoint::parse(&c.to_text()).unwrap(), c);
        for bad in [
            "o\n042\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
            "o\n1\nAAAA\n",
            "\n1\nx\n",
            "o\n1\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
