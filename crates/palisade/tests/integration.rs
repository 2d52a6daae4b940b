//! The integration suite, one binary: each module starts the real `palisade` binary (or, for
//! Autobahn, the gateway's WebSocket stack) and talks to it as a client would. One binary
//! rather than one per file: each would link the whole server again (time and disk in CI).

#[macro_use]
mod common;

mod acme;
mod acme_renewal;
mod audit;
mod audit_failover;
mod autobahn;
mod backchannel_logout;
mod ca;
mod cluster;
mod degradation;
mod dpop;
mod http_stack;
mod identity;
mod keys;
mod oauth;
mod oauth_code;
mod oidc_basic_op;
mod openapi;
mod openidconnect_client;
mod passkeys;
mod policies;
mod principal;
mod realtime;
mod realtime_cluster;
mod realtime_limits;
mod release;
mod resources;
mod routes;
mod scan;
mod social_messages;
mod social_posts;
mod social_profiles;
mod tenancy;
mod tls;
mod tls_expiry;
