//! SPIFFE identifiers (the SPIFFE-ID standard, §2): `spiffe://<trust domain>/<path>`, parsed
//! once at the edge into types that cannot hold an invalid id. Every rule of the standard is a
//! distinct error, so a refusal says exactly what is wrong.

use std::fmt;

/// What is wrong with a trust domain or SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("the scheme must be spiffe://")]
    Scheme,
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    #[error("the trust domain may hold only lowercase letters, digits, '.', '-' and '_'")]
    TrustDomainCharacter,
    #[error("the trust domain is longer than 255 bytes")]
    TrustDomainTooLong,
    #[error("a path segment is empty (a double or trailing '/')")]
    EmptySegment,
    #[error("a path segment is '.' or '..'")]
    DotSegment,
    #[error("a path segment may hold only letters, digits, '.', '-' and '_'")]
    PathCharacter,
    #[error("a workload's SPIFFE ID needs a path")]
    NoPath,
    #[error("the SPIFFE ID is longer than 2048 bytes")]
    TooLong,
}

/// A trust domain: the authority part of every SPIFFE ID it issues, and the DNS name its CA is
/// constrained to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    pub fn parse(text: &str) -> Result<Self, SpiffeIdError> {
        if text.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain);
        }
        if text.len() > 255 {
            return Err(SpiffeIdError::TrustDomainTooLong);
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        if !text.chars().all(allowed) {
            return Err(SpiffeIdError::TrustDomainCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own id, `spiffe://<trust domain>` (which names no workload).
    pub fn id(&self) -> String {
        format!("spiffe://{}", self.0)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A workload's SPIFFE ID: a trust domain and a non-empty path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    /// Begins with '/'.
    path: String,
}

const MAX_ID_BYTES: usize = 2048;

impl SpiffeId {
    pub fn parse(text: &str) -> Result<Self, SpiffeIdError> {
        if text.len() > MAX_ID_BYTES {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = text
            .strip_prefix("spiffe://")
            .ok_or(SpiffeIdError::Scheme)?;
        let (domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let trust_domain = TrustDomain::parse(domain)?;
        if path.is_empty() {
            return Err(SpiffeIdError::NoPath);
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_".contains(c);
        for segment in path[1..].split('/') {
            match segment {
                "" => return Err(SpiffeIdError::EmptySegment),
                "." | ".." => return Err(SpiffeIdError::DotSegment),
                s if !s.chars().all(allowed) => return Err(SpiffeIdError::PathCharacter),
                _ => {}
            }
        }
        Ok(Self {
            trust_domain,
            path: path.to_owned(),
        })
    }

    /// `spiffe://<trust domain><path>`, checked like any other id.
    pub fn new(trust_domain: &TrustDomain, path: &str) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!("spiffe://{trust_domain}{path}"))
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}{}", self.trust_domain, self.path)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A value read from a string by `parse`, its refusal the deserializer's error.
pub(super) fn parsed<'de, D, T, E>(
    deserializer: D,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: fmt::Display,
{
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer, Self::parse)
    }
}

impl<'de> serde::Deserialize<'de> for TrustDomain {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parsed(deserializer, Self::parse)
    }
}

impl serde::Serialize for TrustDomain {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_of_the_standard_is_its_own_refusal() {
        let ok = SpiffeId::parse("spiffe://prod.example/ns/web-1/sa_x.y").unwrap();
        assert_eq!(ok.trust_domain().as_str(), "prod.example");
        assert_eq!(ok.path(), "/ns/web-1/sa_x.y");
        assert_eq!(ok.to_string(), "spiffe://prod.example/ns/web-1/sa_x.y");
        let long = format!("spiffe://a/{}", "x".repeat(2040));
        for (text, error) in [
            ("https://prod.example/web", SpiffeIdError::Scheme),
            ("SPIFFE://prod.example/web", SpiffeIdError::Scheme),
            ("spiffe:///web", SpiffeIdError::EmptyTrustDomain),
            (
                "spiffe://Prod.example/web",
                SpiffeIdError::TrustDomainCharacter,
            ),
            (
                "spiffe://user@prod.example/web",
                SpiffeIdError::TrustDomainCharacter,
            ),
            (
                "spiffe://prod.example:8443/web",
                SpiffeIdError::TrustDomainCharacter,
            ),
            ("spiffe://prod.example", SpiffeIdError::NoPath),
            ("spiffe://prod.example/", SpiffeIdError::EmptySegment),
            ("spiffe://prod.example/web/", SpiffeIdError::EmptySegment),
            ("spiffe://prod.example//web", SpiffeIdError::EmptySegment),
            ("spiffe://prod.example/a/../b", SpiffeIdError::DotSegment),
            ("spiffe://prod.example/./b", SpiffeIdError::DotSegment),
            (
                "spiffe://prod.example/web?x=1",
                SpiffeIdError::PathCharacter,
            ),
            ("spiffe://prod.example/web#x", SpiffeIdError::PathCharacter),
            ("spiffe://prod.example/we%20b", SpiffeIdError::PathCharacter),
            (long.as_str(), SpiffeIdError::TooLong),
        ] {
            assert_eq!(SpiffeId::parse(text), Err(error), "{text}");
        }
        let domain = "a".repeat(256);
        assert_eq!(
            TrustDomain::parse(&domain),
            Err(SpiffeIdError::TrustDomainTooLong)
        );
    }
}
