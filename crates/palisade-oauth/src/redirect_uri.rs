//! Where a client may send its users (OAU-1, OAU-2): a registered redirect URI, checked once
//! when it is registered and matched exactly when it is used — except the port of a loopback
//! address, which native apps choose at run time (RFC 8252 §7.3).

use serde::{Deserialize, Serialize};

/// A URI that may receive a user or a message from this server: https, or http on a loopback
/// address for native apps (RFC 8252), without a fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

const LOOPBACK: [&str; 3] = ["http://127.0.0.1", "http://[::1]", "http://localhost"];

impl RedirectUri {
    pub fn parse(uri: &str) -> Result<Self, String> {
        let loopback = LOOPBACK.iter().any(|p| {
            uri.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with([':', '/']))
        });
        if (uri.starts_with("https://") || loopback) && !uri.contains('#') {
            Ok(Self(uri.to_owned()))
        } else {
            Err(format!(
                "`{uri}` must be https (or http on a loopback address), without a fragment"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host, as written.
    pub fn host(&self) -> &str {
        self.0
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', ':', '?']).next().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Whether `given` (from a request) is this URI: exactly, or a loopback address with any
    /// port. Nothing is normalised: a trailing slash, a case or a path segment more is another
    /// URI.
    pub fn matches(&self, given: &str) -> bool {
        if self.0 == given {
            return true;
        }
        for host in ["http://127.0.0.1", "http://[::1]"] {
            if let (Some(reg), Some(giv)) = (self.0.strip_prefix(host), given.strip_prefix(host)) {
                let without_port = giv
                    .strip_prefix(':')
                    .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()));
                if reg.starts_with('/') && without_port == Some(reg) {
                    return true;
                }
            }
        }
        false
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<RedirectUri> for String {
    fn from(u: RedirectUri) -> String {
        u.0
    }
}

impl std::fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_uris_are_registrable() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "http://127.0.0.1.evil.example/cb",
            "javascript:alert(1)",
            "",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        let app = RedirectUri::parse("https://app.example/cb").unwrap();
        assert!(app.matches("https://app.example/cb"));
        for other in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://app.example/cbx",
            "https://app.example/cb/../evil",
            "https://app.example.evil.com/cb",
            "https://APP.example/cb",
            "http://app.example/cb",
        ] {
            assert!(!app.matches(other), "{other}");
        }
        let native = RedirectUri::parse("http://127.0.0.1/callback").unwrap();
        assert!(native.matches("http://127.0.0.1:51004/callback"));
        assert!(!native.matches("http://127.0.0.1:51004/callback/x"));
        assert!(!native.matches("http://127.0.0.1:51004@evil.example/callback"));
        assert!(!native.matches("http://127.0.0.1.evil.example/callback"));
    }
}
