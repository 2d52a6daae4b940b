//! One-time tickets for a WebSocket upgrade (RTM-1). A browser cannot set `Authorization` on a
//! WebSocket, and a DPoP-bound token cannot travel without a proof for the very request; so
//! the client trades its access token (with its proof, checked by the API's guard) for a
//! ticket over HTTPS and presents the ticket at the upgrade.
//!
//! A ticket is the token, the Origin it was asked from and an expiry thirty seconds away,
//! sealed (AES-256-GCM) under a key every node derives from the shared sealing key: any node
//! redeems any node's ticket, nobody can read the token out of one or forge one, and a ticket
//! is no longer than it needs to be. It is spent in the cluster's replay store at its first
//! use, so a ticket copied from a log or a proxy is worth nothing once used, and nothing at all
//! after thirty seconds. The token inside still has to verify and still must not be revoked
//! when the ticket is redeemed.

use crate::AuthError;
use data_encoding::BASE64URL_NOPAD;
use palisade_cluster::ReplayStore;
use palisade_crypto::SealingKey;
use palisade_store::{StoreError, now_ms};
use serde::{Deserialize, Serialize};

/// How long a ticket may wait for its upgrade.
pub const TICKET_LIFETIME_MS: i64 = 30_000;
const CONTEXT: &[u8] = b"palisade realtime ticket v1";

#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The access token.
    t: String,
    /// The Origin of the request that asked for it (`None`: not a browser).
    o: Option<String>,
    /// Expiry, Unix milliseconds.
    e: i64,
    /// Its single-use id.
    n: String,
}

/// A ticket as handed out.
#[derive(Debug, Clone, Serialize)]
pub struct Ticket {
    pub ticket: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

pub(crate) struct Tickets {
    key: SealingKey,
    replay: ReplayStore,
}

impl Tickets {
    pub(crate) fn new(key: &[u8; 32], replay: ReplayStore) -> Self {
        Self {
            key: SealingKey::from_bytes(key).expect("a 32-byte key is an AES-256 key"),
            replay,
        }
    }

    pub(crate) fn issue(&self, token: &str, origin: Option<&str>) -> Ticket {
        let expires_at = now_ms() + TICKET_LIFETIME_MS;
        let sealed = Sealed {
            t: token.to_owned(),
            o: origin.map(str::to_owned),
            e: expires_at,
            n: palisade_crypto::random_token(),
        };
        let plain = serde_json::to_vec(&sealed).expect("a ticket serializes");
        Ticket {
            ticket: BASE64URL_NOPAD.encode(&self.key.seal(CONTEXT, &plain)),
            expires_at,
        }
    }

    /// The token inside `ticket`, if the ticket is genuine, unexpired and presented from the
    /// Origin it was asked from. Not yet spent: see [`Tickets::spend`].
    pub(crate) fn open(&self, ticket: &str, origin: Option<&str>) -> Result<Opened, AuthError> {
        let invalid = || AuthError::InvalidTicket("The ticket is not valid.");
        let sealed = BASE64URL_NOPAD
            .decode(ticket.as_bytes())
            .map_err(|_| invalid())?;
        let plain = self.key.open(CONTEXT, &sealed).map_err(|_| invalid())?;
        let body: Sealed = serde_json::from_slice(&plain).map_err(|_| invalid())?;
        if body.e <= now_ms() {
            return Err(AuthError::InvalidTicket("The ticket has expired."));
        }
        if body.o.as_deref() != origin {
            return Err(AuthError::InvalidTicket(
                "The ticket was issued to another origin.",
            ));
        }
        Ok(Opened {
            token: body.t,
            id: body.n,
            expires_at: body.e,
        })
    }

    /// Spends an opened ticket: `Ok(false)` when it had been used before, on any node.
    pub(crate) async fn spend(&self, opened: &Opened) -> Result<bool, StoreError> {
        self.replay
            .first_use("realtime ticket", &opened.id, opened.expires_at)
            .await
    }
}

pub(crate) struct Opened {
    pub(crate) token: String,
    id: String,
    expires_at: i64,
}
