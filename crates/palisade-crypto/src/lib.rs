//! Cryptographic primitives shared by every Palisade crate, all backed by aws-lc-rs so that
//! one audited provider does all the work.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

mod sealing;
mod secret;
pub mod webhook;

pub use sealing::{SealError, SealingKey};
pub use secret::Secret;

use aws_lc_rs::{constant_time, digest, rand::SecureRandom};
use data_encoding::BASE64URL_NOPAD;

/// Fills a fixed-size array from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system random generator is unavailable");
    out
}

/// A 256-bit random token in unpadded base64url: session ids, CSRF tokens, one-time tickets.
pub fn random_token() -> String {
    BASE64URL_NOPAD.encode(&random_bytes::<32>())
}

/// SHA-256 of `data`, hex-encoded. Used to store high-entropy tokens: a database leak does not
/// reveal usable session ids or codes, and lookups stay a single indexed equality match.
pub fn sha256_hex(data: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// SHA-256 of `data` as raw bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// HMAC-SHA256 keyed with `key`; used for pseudonyms and keyed digests.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// HMAC-SHA1 as RFC 6238 (TOTP) requires; never used for anything else.
pub fn hmac_sha1_for_totp(key: &[u8], data: &[u8]) -> [u8; 20] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let tag = aws_lc_rs::hmac::sign(&key, data);
    let mut out = [0u8; 20];
    out.copy_from_slice(tag.as_ref());
    out
}

/// PEM with 64-character lines and a final newline, as OpenSSL writes it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(BASE64URL_NOPAD.decode(a.as_bytes()).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn sha256_matches_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_sha1_matches_rfc2202() {
        let tag = hmac_sha1_for_totp(&[0x0b; 20], b"Hi There");
        assert_eq!(
            data_encoding::HEXLOWER.encode(&tag),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"sam"));
    }
}
