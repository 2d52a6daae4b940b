//! HMAC-SHA-2 checked straight on the compression function. The message (the token's signing
//! input) is padded into blocks once; each guess then costs one compression for the inner key
//! block, the precomputed message blocks, and two for the outer hash, with no allocation and
//! no hasher state to set up. sha2 picks the SHA-NI or AVX2 code at run time.

use sha2::Digest;
use sha2::block_api::{compress256, compress512};

/// The JWS HMAC algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HmacAlg {
    Hs256,
    Hs384,
    Hs512,
}

impl HmacAlg {
    pub fn from_jws(alg: &str) -> Option<Self> {
        match alg {
            "HS256" => Some(Self::Hs256),
            "HS384" => Some(Self::Hs384),
            "HS512" => Some(Self::Hs512),
            _ => None,
        }
    }
}

/// A token's signature, ready to be tested against guessed secrets.
pub enum Target {
    Sha256(Engine256),
    Sha512(Engine512),
}

impl Target {
    /// None when the signature has the wrong length for the algorithm.
    pub fn new(alg: HmacAlg, signing_input: &[u8], signature: &[u8]) -> Option<Self> {
        Some(match alg {
            HmacAlg::Hs256 => {
                Self::Sha256(Engine256::new(IV256, 32, sha256, signing_input, signature)?)
            }
            HmacAlg::Hs384 => {
                Self::Sha512(Engine512::new(IV384, 48, sha384, signing_input, signature)?)
            }
            HmacAlg::Hs512 => {
                Self::Sha512(Engine512::new(IV512, 64, sha512, signing_input, signature)?)
            }
        })
    }

    pub fn matches(&self, secret: &[u8]) -> bool {
        match self {
            Self::Sha256(e) => e.matches(secret),
            Self::Sha512(e) => e.matches(secret),
        }
    }
}

const IV256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const IV384: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];
const IV512: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// One engine per SHA-2 word size.
macro_rules! engine {
    ($name:ident, $word:ty, $block:literal, $compress:ident) => {
        pub struct $name {
            iv: [$word; 8],
            out_words: usize,
            message: Vec<[u8; $block]>,
            /// The outer hash's last block, padded, waiting for the inner digest.
            outer_tail: [u8; $block],
            expected: [$word; 8],
            /// The algorithm's own hash, which shortens keys longer than a block (RFC 2104).
            shorten: fn(&[u8]) -> Vec<u8>,
        }

        impl $name {
            const WORD: usize = std::mem::size_of::<$word>();

            fn new(
                iv: [$word; 8],
                out: usize,
                shorten: fn(&[u8]) -> Vec<u8>,
                message: &[u8],
                signature: &[u8],
            ) -> Option<Self> {
                if signature.len() != out {
                    return None;
                }
                let mut expected = [0; 8];
                for (w, chunk) in expected.iter_mut().zip(signature.chunks(Self::WORD)) {
                    *w = <$word>::from_be_bytes(chunk.try_into().ok()?);
                }
                let zeros = [0u8; $block];
                Some(Self {
                    iv,
                    out_words: out / Self::WORD,
                    message: pad($block + message.len(), message),
                    outer_tail: pad($block + out, &zeros[..out])[0],
                    expected,
                    shorten,
                })
            }

            pub fn matches(&self, secret: &[u8]) -> bool {
                let hashed;
                let key = if secret.len() > $block {
                    hashed = (self.shorten)(secret);
                    &hashed[..]
                } else {
                    secret
                };
                let mut state = self.iv;
                $compress(&mut state, &[key_block(key, 0x36)]);
                $compress(&mut state, &self.message);
                // The inner digest, truncated, is the whole outer message after the key block.
                let mut tail = self.outer_tail;
                for (chunk, w) in tail.chunks_mut(Self::WORD).zip(&state[..self.out_words]) {
                    chunk.copy_from_slice(&w.to_be_bytes());
                }
                let mut outer = self.iv;
                $compress(&mut outer, &[key_block(key, 0x5c), tail]);
                outer[..self.out_words] == self.expected[..self.out_words]
            }
        }
    };
}

engine!(Engine256, u32, 64, compress256);
engine!(Engine512, u64, 128, compress512);

fn sha256(key: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(key).to_vec()
}
fn sha384(key: &[u8]) -> Vec<u8> {
    sha2::Sha384::digest(key).to_vec()
}
fn sha512(key: &[u8]) -> Vec<u8> {
    sha2::Sha512::digest(key).to_vec()
}

fn key_block<const N: usize>(key: &[u8], pad: u8) -> [u8; N] {
    let mut block = [pad; N];
    for (b, k) in block.iter_mut().zip(key) {
        *b ^= k;
    }
    block
}

/// `tail` padded as the end of a message `total` bytes long (FIPS 180-4 §5.1): 0x80, zeros,
/// and the bit length in the last 8 (SHA-256) or 16 (SHA-512) bytes.
fn pad<const N: usize>(total: usize, tail: &[u8]) -> Vec<[u8; N]> {
    let len_bytes = N / 8;
    let mut bytes = tail.to_vec();
    bytes.push(0x80);
    while !(bytes.len() + len_bytes).is_multiple_of(N) {
        bytes.push(0);
    }
    let bits = (total as u128) * 8;
    bytes.extend_from_slice(&bits.to_be_bytes()[16 - len_bytes..]);
    bytes
        .chunks(N)
        .map(|c| c.try_into().expect("whole blocks"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::hmac;

    #[test]
    fn agrees_with_a_reference_hmac_for_every_length() {
        let message = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0";
        for (alg, reference) in [
            (HmacAlg::Hs256, hmac::HMAC_SHA256),
            (HmacAlg::Hs384, hmac::HMAC_SHA384),
            (HmacAlg::Hs512, hmac::HMAC_SHA512),
        ] {
            // Message lengths around block boundaries, keys up to past two blocks.
            for msg_len in [0, 55, 56, 64, 111, 112, 128, 200] {
                let msg: Vec<u8> = message.iter().cycle().take(msg_len).copied().collect();
                for key_len in [0, 1, 31, 64, 65, 128, 129, 300] {
                    let key: Vec<u8> = (0..key_len).map(|i| i as u8).collect();
                    let tag = hmac::sign(&hmac::Key::new(reference, &key), &msg);
                    let target = Target::new(alg, &msg, tag.as_ref()).unwrap();
                    assert!(target.matches(&key), "{alg:?} msg {msg_len} key {key_len}");
                    let mut wrong = key.clone();
                    wrong.push(b'x');
                    assert!(
                        !target.matches(&wrong),
                        "{alg:?} msg {msg_len} key {key_len}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_signature_of_the_wrong_length_is_no_target() {
        assert!(Target::new(HmacAlg::Hs256, b"m", &[0; 31]).is_none());
        assert!(Target::new(HmacAlg::Hs384, b"m", &[0; 64]).is_none());
    }
}
