//! The JWT scanner's rules. CWE numbers from MITRE's list: 347 improper verification of a
//! cryptographic signature, 345 insufficient verification of data authenticity, 613
//! insufficient session expiration, 326 inadequate encryption strength, 798/521 weak or
//! hard-coded credentials, 312 cleartext storage of sensitive information, 918 SSRF.

crate::finding::rules! {
    ALG_NONE = "JWT-ALG-NONE", 347,
        "The token is unsigned (alg: none).",
        "Sign every token and refuse `none` in the verifier's algorithm allow-list.";
    ALG_SYMMETRIC = "JWT-ALG-SYMMETRIC", 321,
        "The token is signed with a shared HMAC secret: anyone who can verify it can forge it.",
        "Prefer an asymmetric algorithm (EdDSA, ES256) so verifiers hold only public keys.";
    ALG_UNKNOWN = "JWT-ALG-UNKNOWN", 327,
        "The token names an algorithm that is not a registered JWS signature algorithm.",
        "Use a registered algorithm and pin it per key in the verifier.";
    SIGNATURE_EMPTY = "JWT-SIGNATURE-EMPTY", 347,
        "The token names a signing algorithm but carries no signature.",
        "Refuse tokens whose signature is missing.";
    NO_EXP = "JWT-NO-EXP", 613,
        "The token has no expiry (exp): once leaked it is valid for ever.",
        "Issue short-lived tokens with exp and require it when verifying.";
    LONG_LIFETIME = "JWT-LONG-LIFETIME", 613,
        "The token lives longer than the configured maximum.",
        "Shorten access-token lifetimes (minutes, not days) and refresh instead.";
    EXPIRED = "JWT-EXPIRED", 613,
        "The token has expired.",
        "Nothing to fix in the token; scan a fresh one to probe a target.";
    NO_AUD = "JWT-NO-AUD", 345,
        "The token names no audience (aud), so any service trusting the issuer accepts it.",
        "Issue tokens for one audience and check aud in every verifier.";
    NO_ISS = "JWT-NO-ISS", 345,
        "The token names no issuer (iss).",
        "Set iss and check it against the expected issuer.";
    NO_JTI = "JWT-NO-JTI", 294,
        "The token has no identifier (jti), so a replay cannot be told from the original.",
        "Give each token a unique jti.";
    NO_IAT = "JWT-NO-IAT", 613,
        "The token does not say when it was issued (iat).",
        "Set iat so verifiers can bound a token's age.";
    UNTYPED = "JWT-UNTYPED", 345,
        "The token has no explicit type (typ), so one kind of token can be passed off as another (RFC 8725 §3.11).",
        "Type tokens explicitly (at+jwt for access tokens, RFC 9068) and check typ.";
    SENSITIVE_CLAIM = "JWT-SENSITIVE-CLAIM", 312,
        "The token carries sensitive data in cleartext: a JWS payload is only base64url.",
        "Keep secrets and personal data out of tokens; reference them by identifier.";
    KEY_URL_HEADER = "JWT-KEY-URL-HEADER", 918,
        "The token points at its own verification key (jku or x5u).",
        "Verifiers must take keys from configuration, never from the token.";
    EMBEDDED_KEY_HEADER = "JWT-EMBEDDED-KEY-HEADER", 347,
        "The token embeds its own verification key (jwk or x5c).",
        "Verifiers must take keys from configuration, never from the token.";
    SUSPICIOUS_KID = "JWT-SUSPICIOUS-KID", 20,
        "The key identifier (kid) looks like a path, a URL or a query fragment.",
        "Treat kid as an opaque lookup key into a fixed key set.";
    WEAK_SECRET = "JWT-WEAK-SECRET", 521,
        "The HMAC signing secret was guessed.",
        "Replace the secret with 32 or more random bytes, revoke every token it signed, and prefer asymmetric keys.";
    WEAK_KEY = "JWT-WEAK-KEY", 326,
        "A published verification key is too weak.",
        "Use RSA keys of at least 2048 bits with e = 65537, or P-256/Ed25519 keys.";
    PRIVATE_KEY_PUBLISHED = "JWT-PRIVATE-KEY-PUBLISHED", 200,
        "The key set publishes private or secret key material.",
        "Publish public parameters only; rotate the exposed key at once.";
    JWKS_KID = "JWT-JWKS-KID", 345,
        "Keys in the key set have no kid or share one, so verifiers cannot pick the right key.",
        "Give every key a unique kid.";
    JWKS_MIXED_USE = "JWT-JWKS-MIXED-USE", 323,
        "The same key is published for more than one use, or with no use or algorithm to pin it.",
        "Publish one key per use with use and alg set.";
    ACCEPTS_NONE = "JWT-ACCEPTS-NONE", 347,
        "The target accepts unsigned tokens (alg: none).",
        "Pin the accepted algorithms per key; never accept none.";
    SIGNATURE_NOT_VERIFIED = "JWT-SIGNATURE-NOT-VERIFIED", 347,
        "The target accepts tokens whose signature is missing or wrong.",
        "Verify the signature before reading any claim.";
    ALG_CONFUSION = "JWT-ALG-CONFUSION", 347,
        "The target accepts HMAC tokens keyed with its own public key (algorithm confusion).",
        "Bind each key to one algorithm; never let the token's alg choose how a key is used.";
    PSYCHIC_SIGNATURE = "JWT-PSYCHIC-SIGNATURE", 347,
        "The target accepts an ECDSA signature with r = s = 0 (CVE-2022-21449).",
        "Update the ECDSA implementation; reject r or s outside [1, n-1].";
    KID_INJECTION = "JWT-KID-INJECTION", 22,
        "The target resolves the kid header as a path or a query and accepts the key it yields.",
        "Treat kid as an opaque identifier into a fixed key set.";
    KEY_URL_FETCHED = "JWT-KEY-URL-FETCHED", 918,
        "The target fetches the URL a token names in jku or x5u (server-side request forgery).",
        "Never fetch keys from locations a token names.";
    INJECTED_KEY_TRUSTED = "JWT-INJECTED-KEY-TRUSTED", 347,
        "The target verifies tokens with a key the token itself supplies (jwk, jku or x5u).",
        "Take verification keys from configuration only.";
    AUDIENCE_NOT_CHECKED = "JWT-AUDIENCE-NOT-CHECKED", 345,
        "The target accepts a token issued for another audience.",
        "Check aud against this service's identifier.";
    ISSUER_NOT_CHECKED = "JWT-ISSUER-NOT-CHECKED", 345,
        "The target accepts a token from another issuer.",
        "Check iss against the expected issuer.";
    EXPIRY_NOT_ENFORCED = "JWT-EXPIRY-NOT-ENFORCED", 613,
        "The target accepts expired tokens or tokens without exp.",
        "Require exp and refuse expired tokens.";
    ORACLE = "JWT-ORACLE", 0,
        "How the target tells an accepted token from a refused one, and what the scan could probe.",
        "Nothing to fix: this describes the scan.";
    CLOCK_SKEW = "JWT-CLOCK-SKEW", 613,
        "The target accepts tokens past exp or before nbf by the measured leeway.",
        "Keep the leeway to a minute or less.";
}
