//! The real-time gateway's view of first-party browser sessions: a signed-in user's session
//! cookie makes its principal (`SignedIn::principal`), for as long as the session lives and the
//! account is unlocked.

use futures_util::future::BoxFuture;
use palisade_http::AppError;
use palisade_identity::{Identity, SignedIn, sessions, users};
use palisade_principal::Principal;

pub(crate) struct BrowserSessions(pub(crate) Identity);

impl palisade_realtime::Sessions for BrowserSessions {
    fn principal<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Principal>, AppError>> {
        Box::pin(async move {
            Ok(SignedIn::from_headers(&self.0, headers)
                .await?
                .map(|signed_in| signed_in.principal()))
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
