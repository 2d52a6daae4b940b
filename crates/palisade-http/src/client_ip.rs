//! Who is on the other end of a connection.

use axum::extract::FromRequestParts;
use http::request::Parts;
use std::net::{IpAddr, SocketAddr};

/// The TCP peer of a connection, inserted by the listener into every request it serves.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client's IP address, from the TCP connection. Forwarded-for headers are not trusted:
/// anyone can send them, and throttling keyed on them would be trivially bypassed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = crate::AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<PeerAddr>()
            .map(|p| ClientIp(p.0.ip()))
            .ok_or_else(|| crate::AppError::internal("request served without a peer address"))
    }
}

/// The network a client address counts for in rate limits and throttles: itself for IPv4, its
/// /64 for IPv6 (the smallest block a single subscriber usually holds).
pub fn network_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_per_64() {
        assert_eq!(
            network_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            network_key("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            network_key("192.0.2.1".parse().unwrap()),
            network_key("192.0.2.2".parse().unwrap())
        );
    }
}
