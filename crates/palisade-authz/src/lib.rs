//! Authorization (RES-2, RES-4, RES-5): every decision is a Cedar evaluation of one principal,
//! one action and one object, with the facts the handler looked up (the token's scopes, follow
//! and block relations). Deny by default: only what a `permit` allows is allowed, and any
//! `forbid` — another tenant, a block, a missing scope — wins.
//!
//! The schema and the default policies ship in the binary (`src/policy/`). Policies can be
//! replaced from text: the new set is parsed and validated against the schema first, and only a
//! valid set replaces the old one, whole, with one atomic swap — a decision in flight sees
//! either the old set or the new one, never a mixture or nothing.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

use arc_swap::ArcSwap;
use cedar_policy::{
    ActionConstraint, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, PrincipalConstraint, Request, ResourceConstraint, RestrictedExpression, Schema,
    ValidationMode, Validator,
};
use remembered::{Key, Remembered};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

const SCHEMA: &str = include_str!("policy/schema.cedarschema");
/// The policies Palisade runs with unless given others.
pub const DEFAULT_POLICIES: &str = include_str!("policy/default.cedar");

/// `[authz]` settings.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzSettings {
    /// A Cedar policy file the policies start from until a replacement is stored; rereading it
    /// on SIGHUP stores it as the replacement for every node.
    pub policy_file: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the policies do not parse: {0}")]
    Parse(String),
    #[error("the policies do not match the schema: {0}")]
    Invalid(String),
}

/// Account roles (RES-2), each including the ones below it: platform admin ⊇ tenant admin ⊇
/// moderator ⊇ member. The one definition: accounts store it, the principal carries it, the
/// policies see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Member,
    Moderator,
    TenantAdmin,
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Member,
        Role::Moderator,
        Role::TenantAdmin,
        Role::PlatformAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::TenantAdmin => "tenant_admin",
            Role::PlatformAdmin => "platform_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role directly included in this one.
    fn includes(self) -> Option<Role> {
        match self {
            Role::Member => None,
            Role::Moderator => Some(Role::Member),
            Role::TenantAdmin => Some(Role::Moderator),
            Role::PlatformAdmin => Some(Role::TenantAdmin),
        }
    }
}

/// What can be done; each action's required scope is in the policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ReadProfile,
    UpdateProfile,
    Follow,
    Block,
    Mute,
    CreatePost,
    ReadPost,
    DeletePost,
    HidePost,
    ReadConversation,
    SendMessage,
    ModerateUser,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::ReadProfile,
        Action::UpdateProfile,
        Action::Follow,
        Action::Block,
        Action::Mute,
        Action::CreatePost,
        Action::ReadPost,
        Action::DeletePost,
        Action::HidePost,
        Action::ReadConversation,
        Action::SendMessage,
        Action::ModerateUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadProfile => "ReadProfile",
            Action::UpdateProfile => "UpdateProfile",
            Action::Follow => "Follow",
            Action::Block => "Block",
            Action::Mute => "Mute",
            Action::CreatePost => "CreatePost",
            Action::ReadPost => "ReadPost",
            Action::DeletePost => "DeletePost",
            Action::HidePost => "HidePost",
            Action::ReadConversation => "ReadConversation",
            Action::SendMessage => "SendMessage",
            Action::ModerateUser => "ModerateUser",
        }
    }
}

/// Who asks: a user of a tenant with a role, as established from a verified access token.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    pub user_id: &'a str,
    pub tenant: &'a str,
    pub role: Role,
}

/// The object an action is on, with the attributes policies look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object<'a> {
    Profile {
        owner: &'a str,
        tenant: &'a str,
        public: bool,
    },
    Post {
        id: &'a str,
        author: &'a str,
        tenant: &'a str,
        /// `public`, `followers` or `private`.
        visibility: &'a str,
        hidden: bool,
    },
    Conversation {
        id: &'a str,
        participants: &'a [&'a str],
        tenant: &'a str,
    },
}

/// Who else an object of a class belongs to: nobody of that name exists.
const SOMEONE_ELSE: &str = "";

impl<'a> Object<'a> {
    /// The object as a member of its class, for policies that name no one: a post is its
    /// tenant, visibility and hidden flag, and whether it is `me`'s own. Other objects are
    /// decided one by one (their names are what the policies relate).
    fn class<'b>(&self, me: &'b str) -> Object<'b>
    where
        'a: 'b,
    {
        match *self {
            Object::Post {
                author,
                tenant,
                visibility,
                hidden,
                ..
            } => Object::Post {
                id: SOMEONE_ELSE,
                author: if author == me { me } else { SOMEONE_ELSE },
                tenant,
                visibility,
                hidden,
            },
            ref other => other.clone(),
        }
    }

    /// A post class under `name`; any other object as it is.
    fn named<'b>(self, name: &'b str) -> Object<'b>
    where
        'a: 'b,
    {
        match self {
            Object::Post {
                author,
                tenant,
                visibility,
                hidden,
                ..
            } => Object::Post {
                id: name,
                author,
                tenant,
                visibility,
                hidden,
            },
            other => other,
        }
    }
}

/// The facts of the request the handler established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The access token's scopes.
    pub scopes: &'a [&'a str],
    /// The actor follows the object's owner.
    pub follower: bool,
    /// The actor and the object's owner have blocked one another (either way).
    pub blocked: bool,
}

/// A validated policy set, the text it came from, and for each action the policies that can
/// apply to it.
struct Policies {
    text: String,
    /// Indexed like [`Action::ALL`].
    by_action: Vec<PolicySet>,
    /// Whether no policy names a particular user or object (see [`names_no_one`]): then two
    /// objects that differ only in who else they belong to are decided alike.
    shareable: bool,
    /// Post classes decided under this set (used only when `shareable`).
    remembered: Remembered,
}

impl Policies {
    fn new(set: &PolicySet, text: &str) -> Self {
        Self {
            text: text.to_owned(),
            by_action: Action::ALL
                .into_iter()
                .map(|action| for_action(set, &uid("Action", action.as_str())))
                .collect(),
            shareable: set.policies().all(names_no_one),
            remembered: Remembered::default(),
        }
    }

    fn for_action(&self, action: Action) -> &PolicySet {
        let i = Action::ALL.iter().position(|a| *a == action);
        &self.by_action[i.expect("every action is listed")]
    }
}

/// Whether `policy` decides without naming any particular user, object or tenant: its scope
/// constrains the principal at most by role and the resource at most by type, and its
/// conditions hold no entity literal but roles and actions. Such a policy can tell objects
/// apart only by their attributes and by how they relate to the principal.
fn names_no_one(policy: &cedar_policy::Policy) -> bool {
    let role_or_action = |uid: &EntityUid| {
        let kind = uid.type_name().to_string();
        kind == "Role" || kind == "Action"
    };
    let principal = match policy.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => true,
        PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) => role_or_action(&uid),
        PrincipalConstraint::Eq(_) => false,
    };
    let resource = matches!(
        policy.resource_constraint(),
        ResourceConstraint::Any | ResourceConstraint::Is(_)
    );
    principal && resource && policy.entity_literals().iter().all(role_or_action)
}

/// The policies whose action scope admits `action`. Cedar evaluates every policy it is given,
/// and a policy whose scope excludes the action can neither permit nor forbid it, so the slice
/// decides exactly as the whole set — the schema declares no action groups, so `action in [..]`
/// is plain membership. A decision evaluates a few policies instead of all of them.
fn for_action(set: &PolicySet, action: &EntityUid) -> PolicySet {
    PolicySet::from_policies(
        set.policies()
            .filter(|policy| match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => a == *action,
                ActionConstraint::In(actions) => actions.contains(action),
            })
            .cloned(),
    )
    .expect("a subset of a valid set is valid")
}

/// One decision, and whether it was reached without an error.
#[derive(Debug, Clone, Copy)]
struct Answer {
    allowed: bool,
    clean: bool,
}

impl Answer {
    const REFUSED: Answer = Answer {
        allowed: false,
        clean: false,
    };
}

pub struct Authorizer {
    schema: Schema,
    /// Whether each request and its entities are checked against the schema (in tests).
    checked: bool,
    policies: ArcSwap<Policies>,
    engine: cedar_policy::Authorizer,
}

/// The schema's type names, parsed once: parsing one takes Cedar's full parser.
static TYPES: LazyLock<HashMap<&'static str, EntityTypeName>> = LazyLock::new(|| {
    [
        "Action",
        "Conversation",
        "Post",
        "Profile",
        "Role",
        "Tenant",
        "User",
    ]
    .into_iter()
    .map(|kind| {
        (
            kind,
            EntityTypeName::from_str(kind).expect("a valid type name"),
        )
    })
    .collect()
});

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(TYPES[kind].clone(), EntityId::new(id))
}

fn entity_ref(kind: &str, id: &str) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(uid(kind, id))
}

impl Authorizer {
    /// The authorizer with the default policies.
    pub fn new() -> Self {
        Self::with_policies(DEFAULT_POLICIES).expect("the default policies are valid")
    }

    /// An authorizer with `policies` (Cedar text), validated against the schema.
    pub fn with_policies(policies: &str) -> Result<Self, PolicyError> {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).expect("the schema is valid");
        // Slicing the policies by action (`for_action`) reads `action in [..]` as membership,
        // which holds only while no action is a group of others.
        assert!(
            schema.action_groups().next().is_none(),
            "the schema declares action groups; slice the policies by group membership"
        );
        let set = validated(&schema, policies)?;
        Ok(Self {
            schema,
            checked: cfg!(test),
            policies: ArcSwap::from_pointee(Policies::new(&set, policies)),
            engine: cedar_policy::Authorizer::new(),
        })
    }

    /// Replaces the policies with `policies` if they parse and validate; otherwise the current
    /// ones stay and the error says why (RES-5).
    pub fn reload(&self, policies: &str) -> Result<(), PolicyError> {
        let set = validated(&self.schema, policies)?;
        self.policies.store(Arc::new(Policies::new(&set, policies)));
        Ok(())
    }

    /// The policies in force, as text.
    pub fn policies(&self) -> String {
        self.policies.load().text.clone()
    }

    /// The schema policies are validated against, as text.
    pub fn schema() -> &'static str {
        SCHEMA
    }

    /// Whether `actor` may do `action` on `object` given `facts`.
    pub fn allows(&self, actor: &Actor, action: Action, object: &Object, facts: &Facts) -> bool {
        self.allows_each(actor, action, &[(object.clone(), facts.clone())])[0]
    }

    /// [`Authorizer::allows`] for each of many objects (a page of a timeline), in order. The
    /// entities are built once for all of them; each is then decided on its own request.
    pub fn allows_each(
        &self,
        actor: &Actor,
        action: Action,
        asks: &[(Object, Facts)],
    ) -> Vec<bool> {
        let policies = self.policies.load();
        let set = policies.for_action(action);
        // One evaluation per kind of object on the page, where the policies allow it: each
        // object stands for its class (its own, or someone else's, with its attributes), and
        // asks of one class with the same facts share their answer.
        if let Err(error) = distinct_objects(asks.iter().map(|(object, _)| object)) {
            tracing::error!(%error, action = action.as_str(), "authorization objects refused");
            return vec![false; asks.len()];
        }
        if !policies.shareable {
            let asks: Vec<(Object, &Facts)> = asks.iter().map(|(o, f)| (o.clone(), f)).collect();
            return self
                .decide_distinct(actor, action, set, &asks)
                .into_iter()
                .map(|answer| answer.allowed)
                .collect();
        }
        let mut classes: Vec<(Object, &Facts)> = Vec::new();
        let index: Vec<usize> = asks
            .iter()
            .map(|(object, facts)| {
                let ask = (object.class(actor.user_id), facts);
                match classes.iter().position(|c| *c == ask) {
                    Some(i) => i,
                    None => {
                        classes.push(ask);
                        classes.len() - 1
                    }
                }
            })
            .collect();
        // Classes decided before under these policies keep their answer.
        let mut keys: Vec<Option<Key>> = classes
            .iter()
            .map(|(class, facts)| Key::of(actor, action, class, facts))
            .collect();
        let mut answers: Vec<Option<bool>> = keys
            .iter()
            .map(|key| key.as_ref().and_then(|key| policies.remembered.get(key)))
            .collect();
        let unknown: Vec<usize> = (0..classes.len())
            .filter(|i| answers[*i].is_none())
            .collect();
        if !unknown.is_empty() {
            // Each class is one entity, under a name of its own.
            let names: Vec<String> = (0..unknown.len()).map(|i| format!("class-{i}")).collect();
            let named: Vec<(Object, &Facts)> = unknown
                .iter()
                .zip(&names)
                .map(|(i, name)| (classes[*i].0.clone().named(name), classes[*i].1))
                .collect();
            let decided = self.decide_distinct(actor, action, set, &named);
            for (i, answer) in unknown.into_iter().zip(decided) {
                answers[i] = Some(answer.allowed);
                // An answer an error touched is not remembered: the error is logged again.
                if let (Some(key), true) = (keys[i].take(), answer.clean) {
                    policies.remembered.insert(key, answer.allowed);
                }
            }
        }
        index
            .into_iter()
            .map(|i| answers[i].unwrap_or(false))
            .collect()
    }

    /// One decision for each ask.
    fn decide_distinct(
        &self,
        actor: &Actor,
        action: Action,
        set: &PolicySet,
        asks: &[(Object, &Facts)],
    ) -> Vec<Answer> {
        let entities = match self.entities(actor, asks.iter().map(|(object, _)| object)) {
            Ok(entities) => entities,
            Err(error) => {
                tracing::error!(%error, action = action.as_str(), "authorization entities refused");
                return vec![Answer::REFUSED; asks.len()];
            }
        };
        // A page's asks share a handful of distinct facts: each context is built once.
        let mut contexts: Vec<(&Facts, Context)> = Vec::new();
        asks.iter()
            .map(|(object, facts)| {
                let context = match contexts.iter().find(|(f, _)| *f == *facts) {
                    Some((_, context)) => context.clone(),
                    None => {
                        let context = Self::context(facts);
                        if let Ok(context) = &context {
                            contexts.push((facts, context.clone()));
                        }
                        context?
                    }
                };
                self.request(actor, action, object, context)
            })
            .map(|request| match request {
                Ok(request) => {
                    let answer = self.engine.is_authorized(&request, set, &entities);
                    let mut clean = true;
                    for error in answer.diagnostics().errors() {
                        clean = false;
                        tracing::warn!(%error, action = action.as_str(), "policy evaluation error");
                    }
                    Answer {
                        allowed: answer.decision() == Decision::Allow,
                        clean,
                    }
                }
                Err(error) => {
                    tracing::error!(%error, action = action.as_str(), "authorization request refused");
                    Answer::REFUSED
                }
            })
            .collect()
    }

    /// The roles, the actor, and each object with its attributes. The same object asked about
    /// twice is one entity; two different objects under one name are refused.
    fn entities<'a>(
        &self,
        actor: &Actor,
        objects: impl Iterator<Item = &'a Object<'a>>,
    ) -> Result<Entities, String> {
        let mut entities = ROLES.clone();
        entities.push(
            Entity::new(
                uid("User", actor.user_id),
                HashMap::from([("tenant".to_owned(), entity_ref("Tenant", actor.tenant))]),
                HashSet::from([uid("Role", actor.role.as_str())]),
            )
            .map_err(|e| e.to_string())?,
        );
        for object in distinct_objects(objects)? {
            let (resource, attrs) = resource(object);
            entities.push(Entity::new(resource, attrs, HashSet::new()).map_err(|e| e.to_string())?);
        }
        // Entities are built here from typed values that match the schema by construction (the
        // tests prove it with schema checks on); checking them again per request would more than
        // double the cost of a decision.
        Entities::from_entities(entities, self.checked.then_some(&self.schema))
            .map_err(|e| e.to_string())
    }

    fn context(facts: &Facts) -> Result<Context, String> {
        Context::from_pairs([
            (
                "scopes".to_owned(),
                RestrictedExpression::new_set(
                    facts
                        .scopes
                        .iter()
                        .map(|s| RestrictedExpression::new_string((*s).to_owned())),
                ),
            ),
            (
                "follower".to_owned(),
                RestrictedExpression::new_bool(facts.follower),
            ),
            (
                "blocked".to_owned(),
                RestrictedExpression::new_bool(facts.blocked),
            ),
        ])
        .map_err(|e| e.to_string())
    }

    fn request(
        &self,
        actor: &Actor,
        action: Action,
        object: &Object,
        context: Context,
    ) -> Result<Request, String> {
        Request::new(
            uid("User", actor.user_id),
            uid("Action", action.as_str()),
            resource_uid(object),
            context,
            self.checked.then_some(&self.schema),
        )
        .map_err(|e| e.to_string())
    }
}

impl Default for Authorizer {
    fn default() -> Self {
        Self::new()
    }
}

/// Each object once. The same object asked about twice is one; two different objects under one
/// name are refused.
fn distinct_objects<'o>(
    objects: impl Iterator<Item = &'o Object<'o>>,
) -> Result<Vec<&'o Object<'o>>, String> {
    let mut seen: HashMap<EntityUid, &Object> = HashMap::new();
    let mut distinct = Vec::new();
    for object in objects {
        let name = resource_uid(object);
        match seen.get(&name) {
            Some(earlier) if *earlier != object => {
                return Err(format!("two different objects named {name}"));
            }
            Some(_) => {}
            None => {
                seen.insert(name, object);
                distinct.push(object);
            }
        }
    }
    Ok(distinct)
}

/// An object's entity id.
fn resource_uid(object: &Object) -> EntityUid {
    match object {
        Object::Profile { owner, .. } => uid("Profile", owner),
        Object::Post { id, .. } => uid("Post", id),
        Object::Conversation { id, .. } => uid("Conversation", id),
    }
}

/// An object's entity id and attributes.
fn resource(object: &Object) -> (EntityUid, HashMap<String, RestrictedExpression>) {
    match object {
        Object::Profile {
            owner,
            tenant,
            public,
        } => (
            resource_uid(object),
            HashMap::from([
                ("owner".to_owned(), entity_ref("User", owner)),
                ("tenant".to_owned(), entity_ref("Tenant", tenant)),
                ("public".to_owned(), RestrictedExpression::new_bool(*public)),
            ]),
        ),
        Object::Post {
            id: _,
            author,
            tenant,
            visibility,
            hidden,
        } => (
            resource_uid(object),
            HashMap::from([
                ("author".to_owned(), entity_ref("User", author)),
                ("tenant".to_owned(), entity_ref("Tenant", tenant)),
                (
                    "visibility".to_owned(),
                    RestrictedExpression::new_string((*visibility).to_owned()),
                ),
                ("hidden".to_owned(), RestrictedExpression::new_bool(*hidden)),
            ]),
        ),
        Object::Conversation {
            id: _,
            participants,
            tenant,
        } => (
            resource_uid(object),
            HashMap::from([
                (
                    "participants".to_owned(),
                    RestrictedExpression::new_set(
                        participants.iter().map(|p| entity_ref("User", p)),
                    ),
                ),
                ("tenant".to_owned(), entity_ref("Tenant", tenant)),
            ]),
        ),
    }
}

/// The role entities, each a member of the role it includes; built once.
static ROLES: LazyLock<Vec<Entity>> = LazyLock::new(|| {
    Role::ALL
        .into_iter()
        .map(|role| {
            let parents = role
                .includes()
                .map(|below| uid("Role", below.as_str()))
                .into_iter()
                .collect();
            Entity::new_no_attrs(uid("Role", role.as_str()), parents)
        })
        .collect()
});

/// Parses `text` and validates it strictly against `schema`.
fn validated(schema: &Schema, text: &str) -> Result<PolicySet, PolicyError> {
    let set = PolicySet::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        let problems: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
        return Err(PolicyError::Invalid(problems.join("; ")));
    }
    Ok(set)
}

mod remembered;
#[cfg(test)]
mod tests;
