//! Posts and the home timeline (SOC-2): create, read, delete, hide (moderators), and the
//! timeline of the accounts one follows and one's own, newest first, in pages. Every post shown
//! passes the same policy decision as reading it alone; muted and blocked authors are left out.

use crate::Social;
use crate::decide::{refused, store, within_reach};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use palisade_authz::{Action, Object};
use palisade_http::AppError;
use palisade_http::input::{Json, Query, Text};
use palisade_principal::Principal;
use palisade_store::{Db, new_id, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const MAX_BODY: usize = 5_000;
const PAGE_DEFAULT: i64 = 20;
const PAGE_MAX: i64 = 100;

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Post {
    id: String,
    author_id: String,
    tenant_id: String,
    body: String,
    visibility: String,
    hidden: i64,
    created_at: i64,
}

const COLUMNS: &str = "id, author_id, tenant_id, body, visibility, hidden, created_at";

/// Who may read a post besides its author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Visibility {
    /// Everyone in the organisation.
    Public,
    /// The author's followers.
    Followers,
    /// The author alone.
    Private,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Followers => "followers",
            Visibility::Private => "private",
        }
    }
}

/// A post as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PostView {
    id: String,
    /// The author's account id.
    author: String,
    body: String,
    /// `public`, `followers` or `private`.
    visibility: String,
    /// Hidden by a moderator: shown to its author alone.
    hidden: bool,
    /// Unix milliseconds.
    created_at: i64,
}

impl Post {
    /// The post as the policies see it.
    fn object(&self) -> Object<'_> {
        Object::Post {
            id: &self.id,
            author: &self.author_id,
            tenant: &self.tenant_id,
            visibility: &self.visibility,
            hidden: self.hidden == 1,
        }
    }

    fn shown(&self) -> PostView {
        PostView {
            id: self.id.clone(),
            author: self.author_id.clone(),
            body: self.body.clone(),
            visibility: self.visibility.clone(),
            hidden: self.hidden == 1,
            created_at: self.created_at,
        }
    }
}

impl Social {
    /// Whether the principal may do `action` on `post`.
    async fn may(
        &self,
        principal: &Principal,
        action: Action,
        post: &Post,
    ) -> Result<bool, AppError> {
        let author = post.author_id.as_str();
        self.allows(principal, action, &post.object(), Some(author), &[author])
            .await
    }

    /// The post the path names, if the principal may do `action` on it.
    async fn authorized_post(
        &self,
        principal: &Principal,
        action: Action,
        id: &str,
    ) -> Result<Post, AppError> {
        let post: Post = sqlx::query_as(&format!("SELECT {COLUMNS} FROM posts WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(store)?
            .ok_or(AppError::NotFound)?;
        within_reach(principal, &post.tenant_id)?;
        if !self.may(principal, action, &post).await? {
            return Err(refused());
        }
        Ok(post)
    }
}

/// A new post.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPost {
    /// Not blank; line breaks and tabs are the only control characters allowed.
    #[schema(value_type = String, min_length = 1, max_length = 5000)]
    body: Text<1, MAX_BODY>,
    visibility: Visibility,
}

/// Publishes a post by the principal.
#[utoipa::path(post, path = "/api/posts", tag = "posts", request_body = NewPost,
    responses((status = 201, description = "The post", body = PostView)))]
pub(crate) async fn create(
    State(social): State<Social>,
    principal: Principal,
    Json(new): Json<NewPost>,
) -> Result<Response, AppError> {
    let post = Post {
        id: new_id(),
        author_id: principal.subject.clone(),
        tenant_id: principal.tenant.to_string(),
        body: new.body.into_string(),
        visibility: new.visibility.as_str().to_owned(),
        hidden: 0,
        created_at: now_ms(),
    };
    if !social.may(&principal, Action::CreatePost, &post).await? {
        return Err(refused());
    }
    sqlx::query(&format!(
        "INSERT INTO posts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&post.id)
    .bind(&post.author_id)
    .bind(&post.tenant_id)
    .bind(&post.body)
    .bind(&post.visibility)
    .bind(post.hidden)
    .bind(post.created_at)
    .execute(social.db.pool())
    .await
    .map_err(store)?;
    let shown = post.shown();
    let event = serde_json::json!({"kind": "created", "post": &shown});
    social
        .post_event(&post.author_id, &post.visibility, &event)
        .await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// A post, for whoever may read it.
#[utoipa::path(get, path = "/api/posts/{id}", tag = "posts",
    params(("id" = String, Path, description = "The post's id")),
    responses((status = 200, description = "The post", body = PostView)))]
pub(crate) async fn read(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let post = social
        .authorized_post(&principal, Action::ReadPost, &id)
        .await?;
    Ok(Json(post.shown()).into_response())
}

/// Deletes one's own post.
#[utoipa::path(delete, path = "/api/posts/{id}", tag = "posts",
    params(("id" = String, Path, description = "The post's id")),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let post = social
        .authorized_post(&principal, Action::DeletePost, &id)
        .await?;
    sqlx::query("DELETE FROM posts WHERE id = $1")
        .bind(&post.id)
        .execute(social.db.pool())
        .await
        .map_err(store)?;
    let event = serde_json::json!({"kind": "deleted", "post": {"id": post.id}});
    social
        .post_event(&post.author_id, &post.visibility, &event)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Moderators hide a post of their tenant: it leaves every timeline but its author's.
#[utoipa::path(post, path = "/api/posts/{id}/hide", tag = "posts",
    params(("id" = String, Path, description = "The post's id")),
    responses((status = 204, description = "Hidden")))]
pub(crate) async fn hide(
    State(social): State<Social>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let post = social
        .authorized_post(&principal, Action::HidePost, &id)
        .await?;
    sqlx::query("UPDATE posts SET hidden = 1 WHERE id = $1")
        .bind(&post.id)
        .execute(social.db.pool())
        .await
        .map_err(store)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// Posts per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A page of the timeline.
#[derive(Serialize, ToSchema)]
pub(crate) struct Timeline {
    posts: Vec<PostView>,
    /// The cursor of the next page; null at the end.
    next: Option<String>,
}

/// A position in the timeline: after the post with this time and id (newest first).
fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (at, id) = cursor.split_once('.')?;
    let plausible = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    Some((at.parse().ok()?, id.to_owned())).filter(|_| plausible)
}

/// The home timeline: posts of the accounts the principal follows and its own, newest first,
/// each one the principal may read; muted and blocked authors left out. `next` continues it.
#[utoipa::path(get, path = "/api/timeline", tag = "posts", params(Page),
    responses((status = 200, description = "A page of the timeline", body = Timeline)))]
pub(crate) async fn timeline(
    State(social): State<Social>,
    principal: Principal,
    Query(page): Query<Page>,
) -> Result<Response, AppError> {
    let me = principal.subject.as_str();
    // The facts of every decision come with the page: it holds only the principal's own posts
    // and those of accounts it follows, none from an account with a block between them.
    let readable = |posts: &[Post]| {
        let asks: Vec<_> = posts
            .iter()
            .map(|post| (post.object(), post.author_id != me, false))
            .collect();
        social.decide_each(&principal, Action::ReadPost, &asks)
    };
    Ok(Json(timeline_page(&social.db, me, page, readable).await?).into_response())
}

/// A page of `me`'s timeline: the posts `readable` lets through (it answers for a batch of
/// posts at once, in order), newest first; hidden posts only to their author.
pub(crate) async fn timeline_page(
    db: &Db,
    me: &str,
    page: Page,
    readable: impl Fn(&[Post]) -> Vec<bool>,
) -> Result<Timeline, AppError> {
    let limit = crate::page_size(page.limit, PAGE_DEFAULT, PAGE_MAX)?;
    let (before_at, before_id) = match page.cursor.as_deref() {
        None => (i64::MAX, String::new()),
        Some(c) => parse_cursor(c)
            .ok_or_else(|| AppError::bad_request("invalid_cursor", "The cursor is not valid."))?,
    };
    // Read a page's worth of rows at a time, and more while the policies filter some out.
    let mut shown = Vec::new();
    let mut position = (before_at, before_id);
    let mut exhausted = false;
    while shown.len() < limit as usize && !exhausted {
        let rows: Vec<Post> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM posts p \
             WHERE (p.author_id = $1 OR p.author_id IN \
                    (SELECT followee_id FROM follows WHERE follower_id = $1)) \
             AND p.author_id NOT IN (SELECT muted_id FROM mutes WHERE muter_id = $1) \
             AND p.author_id NOT IN (SELECT blocked_id FROM blocks WHERE blocker_id = $1) \
             AND p.author_id NOT IN (SELECT blocker_id FROM blocks WHERE blocked_id = $1) \
             AND (p.created_at < $2 OR (p.created_at = $2 AND p.id < $3)) \
             ORDER BY p.created_at DESC, p.id DESC LIMIT $4"
        ))
        .bind(me)
        .bind(position.0)
        .bind(&position.1)
        .bind(limit)
        .fetch_all(db.pool())
        .await
        .map_err(store)?;
        exhausted = rows.len() < limit as usize;
        if let Some(last) = rows.last() {
            position = (last.created_at, last.id.clone());
        }
        let candidates: Vec<Post> = rows
            .into_iter()
            .filter(|post| post.author_id == me || post.hidden == 0)
            .collect();
        let answers = readable(&candidates);
        for (post, allowed) in candidates.into_iter().zip(answers) {
            if allowed {
                shown.push(post);
                if shown.len() == limit as usize {
                    break;
                }
            }
        }
    }
    let next = (shown.len() == limit as usize)
        .then(|| shown.last().map(|p| format!("{}.{}", p.created_at, p.id)))
        .flatten();
    Ok(Timeline {
        posts: shown.iter().map(Post::shown).collect(),
        next,
    })
}
