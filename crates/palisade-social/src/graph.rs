//! The social graph in the store (SOC-1): profiles, follows, blocks, mutes. Friends are mutual
//! follows. A block removes the follows between the two, both ways, in the same transaction.

use palisade_store::{Db, StoreError, now_ms};

/// An account's profile, with the account's tenant; an account without a profile row has an
/// empty, private one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Profile {
    pub user_id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub bio: String,
    pub is_public: i64,
}

pub(crate) async fn profile(db: &Db, user_id: &str) -> Result<Option<Profile>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT u.id AS user_id, u.tenant_id, COALESCE(p.display_name, '') AS display_name, \
         COALESCE(p.bio, '') AS bio, COALESCE(p.is_public, 0) AS is_public \
         FROM users u LEFT JOIN profiles p ON p.user_id = u.id WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

pub(crate) async fn save_profile(
    db: &Db,
    user_id: &str,
    display_name: &str,
    bio: &str,
    public: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO profiles (user_id, display_name, bio, is_public, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET \
         display_name = excluded.display_name, bio = excluded.bio, \
         is_public = excluded.is_public, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(display_name)
    .bind(bio)
    .bind(i64::from(public))
    .bind(now_ms())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Whether `follower` follows `followee`.
pub(crate) async fn follows(db: &Db, follower: &str, followee: &str) -> Result<bool, StoreError> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM follows WHERE follower_id = $1 AND followee_id = $2")
            .bind(follower)
            .bind(followee)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some())
}

/// Whether either of the two has blocked the other.
pub(crate) async fn blocked_between(db: &Db, a: &str, b: &str) -> Result<bool, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
         OR (blocker_id = $2 AND blocked_id = $1)",
    )
    .bind(a)
    .bind(b)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// The relations one account can have to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edge {
    Follow,
    Block,
    Mute,
}

impl Edge {
    fn table(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Edge::Follow => ("follows", "follower_id", "followee_id"),
            Edge::Block => ("blocks", "blocker_id", "blocked_id"),
            Edge::Mute => ("mutes", "muter_id", "muted_id"),
        }
    }
}

/// Adds the edge `from → to` (again is a no-op). A block also removes the follows between the
/// two, both ways.
/// Adds the edge; whether it is new.
pub(crate) async fn add(db: &Db, edge: Edge, from: &str, to: &str) -> Result<bool, StoreError> {
    let (table, a, b) = edge.table();
    let mut tx = db.begin().await?;
    let added = sqlx::query(&format!(
        "INSERT INTO {table} ({a}, {b}, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    ))
    .bind(from)
    .bind(to)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if let Edge::Block = edge {
        sqlx::query(
            "DELETE FROM follows WHERE (follower_id = $1 AND followee_id = $2) \
             OR (follower_id = $2 AND followee_id = $1)",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(added)
}

pub(crate) async fn remove(db: &Db, edge: Edge, from: &str, to: &str) -> Result<(), StoreError> {
    let (table, a, b) = edge.table();
    sqlx::query(&format!("DELETE FROM {table} WHERE {a} = $1 AND {b} = $2"))
        .bind(from)
        .bind(to)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The accounts `user_id` follows and that follow it back, oldest follow first.
pub(crate) async fn friends(db: &Db, user_id: &str) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT f.followee_id FROM follows f JOIN follows back \
         ON back.follower_id = f.followee_id AND back.followee_id = f.follower_id \
         WHERE f.follower_id = $1 ORDER BY f.created_at, f.followee_id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
