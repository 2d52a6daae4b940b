//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) — the
//! parameters every authenticator app supports. Replay protection lives in the store: a step is
//! accepted only if it is later than the last accepted one.

use data_encoding::BASE32_NOPAD;

pub const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;

pub fn new_secret() -> [u8; 20] {
    palisade_crypto::random_bytes::<20>()
}

pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let mac = palisade_crypto::hmac_sha1_for_totp(secret, &(step as u64).to_be_bytes());
    let offset = (mac[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The step whose code equals `code`, looking one step either side of now for clock drift.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    [now - 1, now, now + 1].into_iter().find(|&step| {
        palisade_crypto::constant_time_eq(code_at_step(secret, step).as_bytes(), code.as_bytes())
    })
}

/// The `otpauth://` URI an authenticator app imports.
pub fn provisioning_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let issuer_enc = utf8_percent_encode(issuer, NON_ALPHANUMERIC);
    let account_enc = utf8_percent_encode(account, NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        encode_secret(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (the RFC prints 8 digits; these are the last 6).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at_step(secret, step_at(t)), expected, "t = {t}");
        }
    }

    #[test]
    fn accepts_adjacent_steps_only() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let code = code_at_step(&secret, step_at(now) + 1);
        assert_eq!(matching_step(&secret, &code, now), Some(step_at(now) + 1));
        let far = code_at_step(&secret, step_at(now) + 3);
        assert_eq!(matching_step(&secret, &far, now), None);
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "abcdef", now), None);
    }
}
