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
