//! The TLS scanner's rules. CWE numbers from MITRE's list: 326 inadequate encryption
//! strength, 327 broken or risky cryptographic algorithm, 295 improper certificate
//! validation, 298 improper validation of certificate expiration, 297 host mismatch, 319
//! cleartext transmission, 299 improper check for certificate revocation, 1104 unmaintained
//! third-party components (here: deprecated protocol versions).

crate::finding::rules! {
    SSL3 = "TLS-SSLV3", 327,
        "The server accepts SSL 3.0, which POODLE breaks.",
        "Disable SSL 3.0; accept TLS 1.2 and 1.3 only.";
    TLS10 = "TLS-TLS10", 327,
        "The server accepts TLS 1.0, deprecated by RFC 8996.",
        "Disable TLS 1.0; accept TLS 1.2 and 1.3 only.";
    TLS11 = "TLS-TLS11", 327,
        "The server accepts TLS 1.1, deprecated by RFC 8996.",
        "Disable TLS 1.1; accept TLS 1.2 and 1.3 only.";
    NO_TLS13 = "TLS-NO-TLS13", 326,
        "The server does not speak TLS 1.3.",
        "Enable TLS 1.3.";
    PROTOCOLS = "TLS-PROTOCOLS", 0,
        "The protocol versions the server accepts.",
        "Nothing to fix.";
    SUITE_BROKEN = "TLS-SUITE-BROKEN", 327,
        "The server accepts suites without encryption or authentication, export-grade or single-DES suites.",
        "Remove NULL, anon, EXPORT, DES and RC2 suites.";
    SUITE_RC4 = "TLS-SUITE-RC4", 327,
        "The server accepts RC4 suites (RFC 7465 forbids them).",
        "Remove every RC4 suite.";
    SUITE_3DES = "TLS-SUITE-3DES", 326,
        "The server accepts 3DES suites, whose 64-bit blocks SWEET32 attacks.",
        "Remove every 3DES suite.";
    SUITE_NO_FS = "TLS-SUITE-NO-FS", 326,
        "The server accepts suites with static RSA or DH key exchange: no forward secrecy.",
        "Offer only ECDHE (TLS 1.2) and TLS 1.3 suites.";
    SUITE_CBC = "TLS-SUITE-CBC", 327,
        "The server accepts CBC-mode suites (Lucky Thirteen; BEAST under TLS 1.0).",
        "Offer only AEAD suites (AES-GCM, ChaCha20-Poly1305).";
    SUITES = "TLS-SUITES", 0,
        "The cipher suites the server accepts, per version, and whose order it follows.",
        "Nothing to fix.";
    DH_WEAK = "TLS-DH-WEAK", 326,
        "The server's finite-field Diffie-Hellman group is smaller than 2048 bits (Logjam).",
        "Use ECDHE, or DHE with an RFC 7919 group of 2048 bits or more.";
    GROUPS = "TLS-GROUPS", 0,
        "The key-exchange groups the server accepts, post-quantum hybrids included.",
        "Nothing to fix; offering X25519MLKEM768 protects today's traffic from future quantum attacks.";
    CERT_EXPIRED = "TLS-CERT-EXPIRED", 298,
        "A certificate in the chain has expired: clients refuse the connection.",
        "Renew the certificate, and automate renewal (ACME).";
    CERT_NOT_YET_VALID = "TLS-CERT-NOT-YET-VALID", 298,
        "A certificate in the chain is not valid yet.",
        "Check the server's clock and the certificate's notBefore.";
    CERT_EXPIRING = "TLS-CERT-EXPIRING", 298,
        "The leaf certificate expires within 30 days.",
        "Renew it now, and automate renewal (ACME).";
    CERT_SELF_SIGNED = "TLS-CERT-SELF-SIGNED", 295,
        "The leaf certificate is self-signed: clients cannot tell it from an attacker's.",
        "Serve a certificate issued by a CA the clients trust.";
    CERT_UNTRUSTED = "TLS-CERT-UNTRUSTED", 295,
        "The chain does not lead to a trusted root.",
        "Serve the intermediates, in order, up to a root the clients trust.";
    CERT_NAME_MISMATCH = "TLS-CERT-NAME-MISMATCH", 297,
        "The certificate is not valid for the name the client connected to.",
        "Serve a certificate whose subjectAltName covers this name.";
    CERT_WEAK_KEY = "TLS-CERT-WEAK-KEY", 326,
        "A certificate key is too small (RSA under 2048 bits, EC under 256 bits).",
        "Use ECDSA P-256 or RSA of 2048 bits or more.";
    CERT_WEAK_SIGNATURE = "TLS-CERT-WEAK-SIGNATURE", 327,
        "A certificate is signed with SHA-1 or MD5, which collisions break.",
        "Reissue with a SHA-256 (or stronger) signature.";
    CERT_LONG_LIFETIME = "TLS-CERT-LONG-LIFETIME", 298,
        "The leaf certificate is valid for more than 398 days, which browsers refuse for public certificates.",
        "Issue certificates for 90 days or less and renew them automatically.";
    CERT_NO_SAN = "TLS-CERT-NO-SAN", 297,
        "The leaf certificate has no subjectAltName; clients ignore the common name.",
        "Reissue with the host names in subjectAltName.";
    CERT_NO_KEY_ID = "TLS-CERT-NO-KEY-ID", 295,
        "A certificate lacks the key identifiers (AKI on a leaf, SKI on a CA) that strict RFC 5280 verifiers require.",
        "Reissue with authorityKeyIdentifier and subjectKeyIdentifier.";
    CERT_SHORT_SERIAL = "TLS-CERT-SHORT-SERIAL", 330,
        "The leaf's serial number has fewer than 64 bits of entropy (CA/B Forum Baseline Requirements).",
        "Issue with random serial numbers of at least 64 bits.";
    CHAIN_ORDER = "TLS-CHAIN-ORDER", 295,
        "The chain is out of order or carries certificates that do not certify the one before.",
        "Serve the leaf, then each issuer in turn.";
    CHAIN = "TLS-CHAIN", 0,
        "The certificate chain as served.",
        "Nothing to fix.";
    OCSP_NOT_STAPLED = "TLS-OCSP-NOT-STAPLED", 299,
        "The certificate names an OCSP responder but the server staples no response.",
        "Enable OCSP stapling, so clients need not ask the CA.";
    OCSP = "TLS-OCSP", 0,
        "Whether the server staples an OCSP response.",
        "Nothing to fix.";
    ALPN = "TLS-ALPN", 0,
        "The application protocol the server chose from h2 and http/1.1.",
        "Nothing to fix.";
    NO_HSTS = "TLS-NO-HSTS", 319,
        "The HTTPS server sends no Strict-Transport-Security header, so a first visit can be downgraded to HTTP.",
        "Send Strict-Transport-Security: max-age=63072000.";
    HSTS_SHORT = "TLS-HSTS-SHORT", 319,
        "The HSTS max-age is under 180 days.",
        "Send Strict-Transport-Security: max-age=63072000.";
    HSTS = "TLS-HSTS", 0,
        "The server's Strict-Transport-Security policy.",
        "Nothing to fix.";
    NOT_INTERMEDIATE = "TLS-MOZILLA-INTERMEDIATE", 326,
        "Mozilla's intermediate profile (server-side TLS 6.0), the recommended baseline for general-purpose servers.",
        "Apply Mozilla's intermediate configuration: TLS 1.2 and 1.3, ECDHE with AEAD suites, X25519/P-256/P-384 groups, RSA 2048+ or ECDSA keys, at most 366-day certificates.";
    MODERN = "TLS-MOZILLA-MODERN", 0,
        "Mozilla's modern profile (server-side TLS 6.0): TLS 1.3 only, ECDSA certificates of at most 90 days.",
        "Apply Mozilla's modern configuration when every client speaks TLS 1.3.";
}
