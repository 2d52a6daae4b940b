//! Decisions about classes of posts, remembered for as long as the policy set that made them
//! is in force. When no policy names a user or an object (`Policies::shareable`), a post is
//! decided by its class — whose it is (the actor's own or someone else's), its tenant,
//! visibility and hidden flag — and the actor by its role and tenant, with the request's
//! scopes and relations: the same class asked about again, by anyone in the same position,
//! gets the same answer. Cedar cannot read an entity's name, so renaming the actor changes
//! nothing. The memory lives inside the policy set it belongs to: replacing the policies
//! starts with none.

use crate::{Action, Actor, Facts, Object, Role};
use std::collections::HashMap;
use std::sync::Mutex;

const MAX_ENTRIES: usize = 10_000;

/// What a remembered decision depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    action: Action,
    role: Role,
    actor_tenant: String,
    own: bool,
    tenant: String,
    visibility: String,
    hidden: bool,
    scopes: Vec<String>,
    follower: bool,
    blocked: bool,
}

impl Key {
    /// The key of `class` (as `Object::class` made it), for posts; other objects are decided
    /// by name and not remembered.
    pub(crate) fn of(actor: &Actor, action: Action, class: &Object, facts: &Facts) -> Option<Key> {
        match *class {
            Object::Post {
                author,
                tenant,
                visibility,
                hidden,
                ..
            } => Some(Key {
                action,
                role: actor.role,
                actor_tenant: actor.tenant.to_owned(),
                own: author == actor.user_id,
                tenant: tenant.to_owned(),
                visibility: visibility.to_owned(),
                hidden,
                scopes: facts.scopes.iter().map(|s| (*s).to_owned()).collect(),
                follower: facts.follower,
                blocked: facts.blocked,
            }),
            _ => None,
        }
    }
}

#[derive(Default)]
pub(crate) struct Remembered(Mutex<HashMap<Key, bool>>);

impl Remembered {
    pub(crate) fn get(&self, key: &Key) -> Option<bool> {
        self.0
            .lock()
            .expect("remembered decisions")
            .get(key)
            .copied()
    }

    pub(crate) fn insert(&self, key: Key, allowed: bool) {
        let mut decisions = self.0.lock().expect("remembered decisions");
        if decisions.len() >= MAX_ENTRIES {
            decisions.clear();
        }
        decisions.insert(key, allowed);
    }
}
