//! Cookie names and attributes (IDN-4). Every cookie carries the `__Host-` prefix, which makes
//! browsers insist on Secure, Path=/ and no Domain — a subdomain cannot set or overwrite it.

use http::{HeaderMap, HeaderValue, header};
use std::time::Duration;

pub const SESSION: &str = "__Host-palisade-session";
pub const CSRF: &str = "__Host-palisade-csrf";
pub const MFA: &str = "__Host-palisade-mfa";

/// The value of cookie `name` in the request, if sent exactly once. A repeated name is treated
/// as absent: it is the signature of a cookie-tossing attempt.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found
}

/// A `Set-Cookie` value. `SameSite=Lax` for the session so that a top-level navigation from
/// another site (an OAuth client sending the user to sign in) still carries it, `Strict` for the
/// rest.
pub fn set(name: &str, value: &str, max_age: Duration, same_site: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={}",
        max_age.as_secs()
    ))
    .expect("cookie values are base64url")
}

pub fn clear(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .expect("static cookie")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_single_cookies_and_refuses_duplicates() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; __Host-palisade-session=xyz".parse().unwrap(),
        );
        assert_eq!(get(&h, SESSION), Some("xyz"));
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "missing"), None);
        h.append(
            header::COOKIE,
            "__Host-palisade-session=other".parse().unwrap(),
        );
        assert_eq!(get(&h, SESSION), None);
    }
}
