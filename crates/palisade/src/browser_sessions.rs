//! The real-time gateway's view of first-party browser sessions: a signed-in user's session
//! cookie makes a principal with the scopes the account pages use, for as long as the session
//! lives and the account is unlocked.

use futures_util::future::BoxFuture;
use palisade_http::AppError;
use palisade_identity::{Identity, SignedIn, sessions, users};
use palisade_principal::{Principal, Role, Scopes, TenantId};

/// What a session may do on a socket: read and send, as the account pages do.
const SESSION_SCOPES: &str = "social:read messages";
/// The client a session acts through: Palisade's own pages.
const FIRST_PARTY: &str = "palisade";

pub(crate) struct BrowserSessions(pub(crate) Identity);

impl palisade_realtime::Sessions for BrowserSessions {
    fn principal<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Principal>, AppError>> {
        Box::pin(async move {
            let Some(signed_in) = SignedIn::from_headers(&self.0, headers).await? else {
                return Ok(None);
            };
            let SignedIn { user, session } = signed_in;
            Ok(Some(Principal {
                role: Some(Role::parse(&user.role).unwrap_or(Role::Member)),
                tenant: TenantId::new(user.tenant_id),
                subject: user.id,
                scopes: Scopes::parse(SESSION_SCOPES),
                client_id: FIRST_PARTY.to_owned(),
                session: Some(session.id_hash),
                key_binding: None,
                expires_at: session.expires_at / 1000,
            }))
        })
    }

    fn is_live<'a>(&'a self, principal: &'a Principal) -> BoxFuture<'a, Result<bool, AppError>> {
        Box::pin(async move {
            let Some(session) = &principal.session else {
                return Ok(false);
            };
            let now = palisade_store::now_ms();
            if !sessions::is_live(&self.0.db, session, now).await? {
                return Ok(false);
            }
            Ok(users::get(&self.0.db, &principal.subject)
                .await?
                .is_some_and(|user| !user.is_locked()))
        })
    }
}
