//! The one way this API asks the policies: the principal as the Cedar actor, the scopes of its
//! token, and the follow and block facts between it and the accounts the object belongs to.

use crate::{Social, graph};
use palisade_authz::{Action, Actor, Facts, Object, Role};
use palisade_http::AppError;
use palisade_principal::Principal;

/// The answer when the policies say no.
pub(crate) fn refused() -> AppError {
    AppError::forbidden("forbidden", "The policies do not allow this.")
}

/// An object of another tenant is not found (RES-4): answering that it exists but is refused
/// would tell an outsider which ids are in use. Platform admins reach every tenant; within the
/// tenant, the policies decide.
pub(crate) fn within_reach(principal: &Principal, tenant: &str) -> Result<(), AppError> {
    if principal.tenant == *tenant || principal.role == Some(Role::PlatformAdmin) {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// A store failure as the one error type.
pub(crate) fn store(e: sqlx::Error) -> AppError {
    palisade_store::StoreError::from(e).into()
}

impl Social {
    /// Whether the principal may do `action` on `object`. `follows` is the account whose
    /// followers count (a profile's owner, a post's author); a block between the principal and
    /// any account of `blocks` counts. A client acting for itself, without a user, may do
    /// nothing here.
    pub(crate) async fn allows(
        &self,
        principal: &Principal,
        action: Action,
        object: &Object<'_>,
        follows: Option<&str>,
        blocks: &[&str],
    ) -> Result<bool, AppError> {
        let me = principal.subject.as_str();
        let follower = match follows {
            Some(owner) => graph::follows(&self.db, me, owner).await?,
            None => false,
        };
        let mut blocked = false;
        for other in blocks.iter().filter(|other| **other != me) {
            blocked |= graph::blocked_between(&self.db, me, other).await?;
        }
        Ok(self.decide_each(principal, action, &[(object.clone(), follower, blocked)])[0])
    }

    /// The policies' answer for each of many objects, in order, with the entities built once;
    /// each ask carries its facts: whether the principal follows the object's owner, and
    /// whether a block stands between them.
    pub(crate) fn decide_each(
        &self,
        principal: &Principal,
        action: Action,
        asks: &[(Object<'_>, bool, bool)],
    ) -> Vec<bool> {
        let Some(role) = principal.role else {
            return vec![false; asks.len()];
        };
        let scopes: Vec<&str> = principal.scopes.iter().collect();
        let asks: Vec<(Object, Facts)> = asks
            .iter()
            .map(|(object, follower, blocked)| {
                let facts = Facts {
                    scopes: &scopes,
                    follower: *follower,
                    blocked: *blocked,
                };
                (object.clone(), facts)
            })
            .collect();
        self.authz.allows_each(
            &Actor {
                user_id: &principal.subject,
                tenant: principal.tenant.as_str(),
                role,
            },
            action,
            &asks,
        )
    }

    /// [`Social::allows`], refusing with the one error when the answer is no.
    pub(crate) async fn require(
        &self,
        principal: &Principal,
        action: Action,
        object: &Object<'_>,
        follows: Option<&str>,
        blocks: &[&str],
    ) -> Result<(), AppError> {
        if self
            .allows(principal, action, object, follows, blocks)
            .await?
        {
            Ok(())
        } else {
            Err(refused())
        }
    }
}
