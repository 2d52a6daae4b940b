//! Profiles and the relations between accounts (SOC-1): read and change a profile, follow,
//! block and mute, list friends. The account in the path is never trusted: every route loads
//! it and asks the policies whether the principal may act on it (RES-3) — with the follow and
//! block facts looked up for exactly these two accounts.

use crate::Social;
use crate::graph::{self, Edge, Profile};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use palisade_authz::{Action, Object};
use palisade_http::AppError;
use palisade_http::input::{Json, Line, Text};
use palisade_principal::Principal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const MAX_DISPLAY_NAME: usize = 64;
const MAX_BIO: usize = 500;

/// An account id from a path: what ids look like, or a 404 before anything is read.
fn account_id(raw: &str) -> Result<&str, AppError> {
    let plausible = (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plausible.then_some(raw).ok_or(AppError::NotFound)
}

impl Social {
    /// The profile of the account `raw` names, if the principal may do `action` on it.
    async fn authorized(
        &self,
        principal: &Principal,
        action: Action,
        raw: &str,
    ) -> Result<Profile, AppError> {
        let target = graph::profile(&self.db, account_id(raw)?)
            .await?
            .ok_or(AppError::NotFound)?;
        crate::decide::within_reach(principal, &target.tenant_id)?;
        if principal.role.is_none() {
            return Err(AppError::forbidden(
                "user_required",
                "This action is taken by a user, not by a client on its own behalf.",
            ));
        }
        let owner = target.user_id.as_str();
        let object = Object::Profile {
            owner,
            tenant: &target.tenant_id,
            public: target.is_public == 1,
        };
        self.require(principal, action, &object, Some(owner), &[owner])
            .await?;
        Ok(target)
    }
}

/// A profile as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProfileView {
    user_id: String,
    display_name: String,
    bio: String,
    /// Whether everyone in the organisation sees it, or only followers.
    public: bool,
}

fn shown(p: &Profile) -> Response {
    Json(ProfileView {
        user_id: p.user_id.clone(),
        display_name: p.display_name.clone(),
        bio: p.bio.clone(),
        public: p.is_public == 1,
    })
    .into_response()
}

/// A profile, for whoever may see it: its owner, everyone in the organisation if it is public,
/// followers if it is not; never someone blocked.
#[utoipa::path(get, path = "/api/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "The account's id")),
    responses((status = 200, description = "The profile", body = ProfileView)))]
pub(crate) async fn read(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let profile = social
        .authorized(&principal, Action::ReadProfile, &id)
        .await?;
    Ok(shown(&profile))
}

/// A profile's new content.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Update {
    /// One line.
    #[schema(value_type = String, max_length = 64)]
    display_name: Line<0, MAX_DISPLAY_NAME>,
    /// Line breaks and tabs are the only control characters allowed.
    #[schema(value_type = String, max_length = 500)]
    bio: Text<0, MAX_BIO>,
    public: bool,
}

/// Changes one's own profile.
#[utoipa::path(put, path = "/api/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "The account's id: one's own")),
    request_body = Update,
    responses((status = 200, description = "The profile as changed", body = ProfileView)))]
pub(crate) async fn update(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
    Json(change): Json<Update>,
) -> Result<Response, AppError> {
    let mut profile = social
        .authorized(&principal, Action::UpdateProfile, &id)
        .await?;
    graph::save_profile(
        &social.db,
        &profile.user_id,
        change.display_name.as_str(),
        change.bio.as_str(),
        change.public,
    )
    .await?;
    profile.display_name = change.display_name.into_string();
    profile.bio = change.bio.into_string();
    profile.is_public = i64::from(change.public);
    Ok(shown(&profile))
}

/// `PUT` adds the principal's edge to the account, `DELETE` removes it.
async fn edge(
    social: &Social,
    principal: &Principal,
    id: &str,
    edge: Edge,
    add: bool,
) -> Result<Response, AppError> {
    let action = match edge {
        Edge::Follow => Action::Follow,
        Edge::Block => Action::Block,
        Edge::Mute => Action::Mute,
    };
    let target = social.authorized(principal, action, id).await?;
    if add {
        let added = graph::add(&social.db, edge, &principal.subject, &target.user_id).await?;
        if added && edge == Edge::Follow {
            let data = serde_json::json!({"kind": "follower", "follower": principal.subject});
            social.notify(&target.user_id, &data).await?;
        }
    } else {
        graph::remove(&social.db, edge, &principal.subject, &target.user_id).await?;
    }
    // Blocks and follows decide subscriptions (a conversation, followers' posts): both
    // accounts' open ones are decided again.
    if edge != Edge::Mute {
        for user in [&principal.subject, &target.user_id] {
            social.fanout.reauthorize(user).await;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

macro_rules! edge_handlers {
    ($($name:ident => $edge:expr, $path:literal, $what:literal;)*) => {$(
        #[doc = concat!("`PUT` ", $what, " the account, `DELETE` undoes it.")]
        #[utoipa::path(method(put, delete), path = $path, tag = "relations",
            params(("id" = String, Path, description = "The other account's id")),
            responses((status = 204, description = "Done")))]
        pub(crate) async fn $name(
            State(social): State<Social>,
            principal: Principal,
            method: Method,
            Path(id): Path<String>,
        ) -> Result<Response, AppError> {
            edge(&social, &principal, &id, $edge, method == Method::PUT).await
        }
    )*};
}

edge_handlers! {
    follow => Edge::Follow, "/api/profiles/{id}/follow", "follows";
    block => Edge::Block, "/api/profiles/{id}/block", "blocks";
    mute => Edge::Mute, "/api/profiles/{id}/mute", "mutes";
}

/// An account's friends.
#[derive(Serialize, ToSchema)]
pub(crate) struct Friends {
    /// Ids of the accounts that follow it and that it follows.
    friends: Vec<String>,
}

/// The account's friends (mutual follows), for whoever may read its profile.
#[utoipa::path(get, path = "/api/profiles/{id}/friends", tag = "relations",
    params(("id" = String, Path, description = "The account's id")),
    responses((status = 200, description = "Its friends", body = Friends)))]
pub(crate) async fn friends(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let profile = social
        .authorized(&principal, Action::ReadProfile, &id)
        .await?;
    let friends = graph::friends(&social.db, &profile.user_id).await?;
    Ok(Json(Friends { friends }).into_response())
}
