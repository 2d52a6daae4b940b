//! The HTTP layer shared by every Palisade surface: the TLS listener and its graceful shutdown,
//! the middleware stack every request passes through (trace context, panic catching, limits,
//! security headers, metrics), the one error type and its rendering, routes declared with their
//! access and the guards that enforce it, health endpoints, and the one outbound client.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod api_key;
pub mod client_ip;
pub mod egress;
pub mod error;
pub mod forms;
pub mod guard;
pub mod headers;
pub mod health;
pub mod input;
pub mod metrics;
pub mod otlp;
pub mod routes;
pub mod server;
pub mod shed;
pub mod stack;
pub mod trace;

pub use api_key::ApiKeys;
pub use client_ip::ClientIp;
pub use error::{AppError, ErrorInfo};
pub use guard::{Guard, Guards};
pub use routes::{Access, Routes};
pub use trace::TraceId;

/// The stylesheet every page links to: one small file, served from `/static/palisade.css`.
pub const STYLESHEET: &str = include_str!("../static/palisade.css");
