//! The few DER structures needed to turn a published JWK back into the PEM and DER files a
//! confused verifier may be using as an HMAC secret.

const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const NULL: &[u8] = &[0x05, 0x00];
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes.
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match bytes.iter().position(|&b| b != 0) {
        Some(i) => &bytes[i..],
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(0x02, &content)
}

fn spki(algorithm: &[&[u8]], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0];
    bits.extend_from_slice(key);
    tlv(
        0x30,
        &[tlv(0x30, &algorithm.concat()), tlv(0x03, &bits)].concat(),
    )
}

/// PKCS#1 RSAPublicKey.
pub(crate) fn rsa_pkcs1(n: &[u8], e: &[u8]) -> Vec<u8> {
    tlv(0x30, &[unsigned(n), unsigned(e)].concat())
}

/// SubjectPublicKeyInfo of an RSA key.
pub(crate) fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    spki(&[RSA_ENCRYPTION, NULL], &rsa_pkcs1(n, e))
}

/// SubjectPublicKeyInfo of an EC key on a NIST curve, from its uncompressed point.
pub(crate) fn ec_spki(crv: &str, point: &[u8]) -> Option<Vec<u8>> {
    let curve = match crv {
        "P-256" => P256,
        "P-384" => P384,
        "P-521" => P521,
        _ => return None,
    };
    Some(spki(&[EC_PUBLIC_KEY, curve], point))
}

/// SubjectPublicKeyInfo of an Ed25519 key.
pub(crate) fn ed25519_spki(x: &[u8]) -> Vec<u8> {
    spki(&[ED25519], x)
}

pub(crate) use palisade_crypto::pem;

/// The DER inside the first PEM block with this label.
pub(crate) fn pem_decode(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop].split_whitespace().collect();
    data_encoding::BASE64.decode(b64.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, KeyPair};

    #[test]
    fn encodes_keys_as_the_crypto_library_does() {
        let rsa = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = rsa.public_key();
        let (n, e) = (public.modulus(), public.exponent());
        assert_eq!(
            rsa_pkcs1(
                n.big_endian_without_leading_zero(),
                e.big_endian_without_leading_zero()
            ),
            public.as_ref()
        );
        assert_eq!(
            rsa_spki(
                n.big_endian_without_leading_zero(),
                e.big_endian_without_leading_zero()
            ),
            public.as_der().unwrap().as_ref()
        );

        let rng = SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let ec = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            pkcs8.as_ref(),
        )
        .unwrap();
        assert_eq!(
            ec_spki("P-384", ec.public_key().as_ref()).unwrap(),
            ec.public_key().as_der().unwrap().as_ref()
        );
        assert!(ec_spki("secp256k1", &[4]).is_none());
    }

    #[test]
    fn writes_pem_lines_of_64_characters() {
        let text = pem("PUBLIC KEY", &[0xff; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END PUBLIC KEY-----"));
        assert!(text.ends_with('\n'));
        assert_eq!(pem_decode(&text, "PUBLIC KEY").unwrap(), [0xff; 100]);
        assert_eq!(pem_decode(&text, "PRIVATE KEY"), None);
    }
}
