//! The cipher suites and key-exchange groups a probe offers, with what makes each weak. A
//! suite's properties are read from its IANA name, so the table is only codes and names.

/// TLS 1.2 and earlier suites, by IANA code point.
pub const LEGACY: &[(u16, &str)] = &[
    (0x0001, "TLS_RSA_WITH_NULL_MD5"),
    (0x0002, "TLS_RSA_WITH_NULL_SHA"),
    (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
    (0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    (0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    (0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5"),
    (0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0009, "TLS_RSA_WITH_DES_CBC_SHA"),
    (0x000a, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0012, "TLS_DHE_DSS_WITH_DES_CBC_SHA"),
    (0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA"),
    (0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA"),
    (0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA"),
    (0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0x0018, "TLS_DH_anon_WITH_RC4_128_MD5"),
    (0x001b, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"),
    (0x002f, "TLS_RSA_WITH_AES_128_CBC_SHA"),
    (0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA"),
    (0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    (0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA"),
    (0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA"),
    (0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA"),
    (0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    (0x003a, "TLS_DH_anon_WITH_AES_256_CBC_SHA"),
    (0x003b, "TLS_RSA_WITH_NULL_SHA256"),
    (0x003c, "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    (0x003d, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    (0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256"),
    (0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    (0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0x006a, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256"),
    (0x006b, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256"),
    (0x006c, "TLS_DH_anon_WITH_AES_128_CBC_SHA256"),
    (0x006d, "TLS_DH_anon_WITH_AES_256_CBC_SHA256"),
    (0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    (0x0096, "TLS_RSA_WITH_SEED_CBC_SHA"),
    (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009d, "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    (0x009e, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0x009f, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0x00a2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256"),
    (0x00a3, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384"),
    (0x00a6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"),
    (0x00a7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384"),
    (0xc001, "TLS_ECDH_ECDSA_WITH_NULL_SHA"),
    (0xc002, "TLS_ECDH_ECDSA_WITH_RC4_128_SHA"),
    (0xc004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xc005, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xc006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA"),
    (0xc007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"),
    (0xc008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
    (0xc00a, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
    (0xc00e, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA"),
    (0xc00f, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA"),
    (0xc010, "TLS_ECDHE_RSA_WITH_NULL_SHA"),
    (0xc011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"),
    (0xc012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    (0xc013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
    (0xc014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
    (0xc015, "TLS_ECDH_anon_WITH_NULL_SHA"),
    (0xc016, "TLS_ECDH_anon_WITH_RC4_128_SHA"),
    (0xc017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA"),
    (0xc018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"),
    (0xc019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA"),
    (0xc023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    (0xc024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384"),
    (0xc027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
    (0xc028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    (0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    (0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    (0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    (0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (0xc09c, "TLS_RSA_WITH_AES_128_CCM"),
    (0xc09d, "TLS_RSA_WITH_AES_256_CCM"),
    (0xc09e, "TLS_DHE_RSA_WITH_AES_128_CCM"),
    (0xc09f, "TLS_DHE_RSA_WITH_AES_256_CCM"),
    (0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"),
    (0xc0ad, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"),
    (0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    (0xccaa, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
];

/// TLS 1.3 suites (RFC 8446 §B.4).
pub const TLS13: &[(u16, &str)] = &[
    (0x1301, "TLS_AES_128_GCM_SHA256"),
    (0x1302, "TLS_AES_256_GCM_SHA384"),
    (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    (0x1304, "TLS_AES_128_CCM_SHA256"),
    (0x1305, "TLS_AES_128_CCM_8_SHA256"),
];

/// Key-exchange groups (IANA TLS Supported Groups), post-quantum hybrids first.
pub const GROUPS: &[(u16, &str)] = &[
    (0x11ec, "X25519MLKEM768"),
    (0x11eb, "SecP256r1MLKEM768"),
    (0x11ed, "SecP384r1MLKEM1024"),
    (0x6399, "X25519Kyber768Draft00"),
    (0x0201, "MLKEM768"),
    (0x0202, "MLKEM1024"),
    (0x001d, "x25519"),
    (0x0017, "secp256r1"),
    (0x0018, "secp384r1"),
    (0x0019, "secp521r1"),
    (0x001e, "x448"),
    (0x0100, "ffdhe2048"),
    (0x0101, "ffdhe3072"),
    (0x0102, "ffdhe4096"),
];

/// The elliptic-curve groups, which alone can be probed through a TLS 1.2 ECDHE exchange.
pub const EC_GROUPS: &[u16] = &[0x001d, 0x0017, 0x0018, 0x0019, 0x001e];

/// A group's name, or its code point.
pub fn group_name(code: u16) -> String {
    GROUPS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("group 0x{code:04x}"), |(_, n)| (*n).to_owned())
}

/// Whether a group is a post-quantum hybrid or pure ML-KEM.
pub fn is_post_quantum(code: u16) -> bool {
    matches!(code, 0x11eb..=0x11ed | 0x6399 | 0x0200..=0x0202)
}

/// A suite's name, or its code point.
pub fn suite_name(code: u16) -> String {
    LEGACY
        .iter()
        .chain(TLS13)
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("suite 0x{code:04x}"), |(_, n)| (*n).to_owned())
}

/// Whether a legacy suite can be negotiated below TLS 1.2 (AEAD and SHA-2 MACs are 1.2 only).
pub fn before_tls12(name: &str) -> bool {
    !["GCM", "CCM", "CHACHA20", "_SHA256", "_SHA384"]
        .iter()
        .any(|t| name.contains(t))
}

/// What is wrong with a suite, worst first; `None` for a sound one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Weakness {
    /// No encryption, no authentication, export-grade or single DES/RC2: broken outright.
    Broken,
    Rc4,
    /// 64-bit blocks (SWEET32).
    TripleDes,
    /// Static RSA or DH key exchange: no forward secrecy.
    NoForwardSecrecy,
    /// MAC-then-encrypt CBC (Lucky Thirteen, and BEAST before TLS 1.1).
    Cbc,
}

pub fn weakness(name: &str) -> Option<Weakness> {
    let (kx, cipher) = name
        .strip_prefix("TLS_")
        .and_then(|n| n.split_once("_WITH_"))
        .unwrap_or(("", name));
    if kx.contains("anon")
        || kx.contains("EXPORT")
        || cipher.starts_with("NULL")
        || cipher.starts_with("DES_")
        || cipher.starts_with("RC2")
    {
        Some(Weakness::Broken)
    } else if cipher.starts_with("RC4") {
        Some(Weakness::Rc4)
    } else if cipher.starts_with("3DES") {
        Some(Weakness::TripleDes)
    } else if !kx.is_empty() && !kx.starts_with("ECDHE_") && !kx.starts_with("DHE_") {
        Some(Weakness::NoForwardSecrecy)
    } else if cipher.contains("CBC") {
        Some(Weakness::Cbc)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weaknesses_are_read_from_the_name() {
        let of = |n| weakness(n);
        assert_eq!(
            of("TLS_DH_anon_WITH_AES_128_CBC_SHA"),
            Some(Weakness::Broken)
        );
        assert_eq!(of("TLS_RSA_EXPORT_WITH_RC4_40_MD5"), Some(Weakness::Broken));
        assert_eq!(of("TLS_ECDHE_RSA_WITH_NULL_SHA"), Some(Weakness::Broken));
        assert_eq!(of("TLS_RSA_WITH_DES_CBC_SHA"), Some(Weakness::Broken));
        assert_eq!(of("TLS_ECDHE_RSA_WITH_RC4_128_SHA"), Some(Weakness::Rc4));
        assert_eq!(
            of("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
            Some(Weakness::TripleDes)
        );
        assert_eq!(
            of("TLS_RSA_WITH_AES_128_GCM_SHA256"),
            Some(Weakness::NoForwardSecrecy)
        );
        assert_eq!(
            of("TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA"),
            Some(Weakness::NoForwardSecrecy)
        );
        assert_eq!(
            of("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
            Some(Weakness::Cbc)
        );
        assert_eq!(of("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"), None);
        assert_eq!(of("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256"), None);
        assert_eq!(of("TLS_AES_128_GCM_SHA256"), None);
        assert!(before_tls12("TLS_RSA_WITH_AES_128_CBC_SHA"));
        assert!(!before_tls12("TLS_RSA_WITH_AES_128_CBC_SHA256"));
    }

    #[test]
    fn code_points_are_unique() {
        let mut codes: Vec<u16> = LEGACY.iter().chain(TLS13).map(|(c, _)| *c).collect();
        let n = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }
}
