//! Durable streams that are not a conversation's messages (a user's notifications, an author's
//! posts), in `realtime_events`: each event numbered per stream without gaps, so that its
//! number is the offset clients resume from, on any node.

use crate::channels::Event;
use palisade_store::{Db, StoreError, now_ms};
use serde_json::value::RawValue;

/// The epoch of every stream kept in the database: numbering never starts over.
pub const DURABLE_EPOCH: &str = "d1";

/// Appends `data` for `audience` (`None`: every subscriber) to `stream`.
pub async fn append(
    db: &Db,
    stream: &str,
    audience: Option<&str>,
    data: Box<RawValue>,
) -> Result<Event, StoreError> {
    // Of two concurrent appends the primary key lets one have the next number; the other
    // takes the one after it.
    let mut last_error = None;
    for _ in 0..8 {
        let mut tx = db.begin().await?;
        let appended = append_in(&mut tx, stream, audience, &data).await;
        match appended {
            Ok(offset) => {
                tx.commit().await?;
                return Ok(Event {
                    offset,
                    audience: audience.map(str::to_owned),
                    data,
                });
            }
            Err(e) if e.is_unique_violation() => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.expect("the loop ran"))
}

/// Appends within the caller's transaction (with what it stores, in one commit); its offset.
/// Of two concurrent transactions one fails with a unique violation and is to be retried.
pub async fn append_in(
    conn: &mut sqlx::AnyConnection,
    stream: &str,
    audience: Option<&str>,
    data: &RawValue,
) -> Result<u64, StoreError> {
    let (offset,): (i64,) = sqlx::query_as(
        "INSERT INTO realtime_events (stream, \"offset\", audience, data, created_at) \
         SELECT $1, COALESCE(MAX(\"offset\"), 0) + 1, $2, $3, $4 \
         FROM realtime_events WHERE stream = $1 RETURNING \"offset\"",
    )
    .bind(stream)
    .bind(audience)
    .bind(data.get())
    .bind(now_ms())
    .fetch_one(conn)
    .await?;
    Ok(offset as u64)
}

/// The last offset of `stream` (0: empty).
pub async fn head(db: &Db, stream: &str) -> Result<u64, StoreError> {
    let (head,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(MAX(\"offset\"), 0) FROM realtime_events WHERE stream = $1",
    )
    .bind(stream)
    .fetch_one(db.pool())
    .await?;
    Ok(head as u64)
}

/// Up to `limit` events of `stream` after `after`, in order.
pub async fn after(
    db: &Db,
    stream: &str,
    after: u64,
    limit: u64,
) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<(i64, Option<String>, String)> = sqlx::query_as(
        "SELECT \"offset\", audience, data FROM realtime_events \
         WHERE stream = $1 AND \"offset\" > $2 ORDER BY \"offset\" LIMIT $3",
    )
    .bind(stream)
    .bind(after as i64)
    .bind(limit as i64)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter()
        .map(|(offset, audience, data)| {
            Ok(Event {
                offset: offset as u64,
                audience,
                data: RawValue::from_string(data)
                    .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn streams_are_numbered_without_gaps(db: Db) {
        let data = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        let (a, b) = tokio::join!(
            append(&db, "s", None, data("1")),
            append(&db, "s", Some("followers"), data("2"))
        );
        let mut offsets = [a.unwrap().offset, b.unwrap().offset];
        offsets.sort();
        assert_eq!(
            offsets,
            [1, 2],
            "concurrent appends take consecutive numbers"
        );
        append(&db, "other", None, data("3")).await.unwrap();
        assert_eq!(head(&db, "s").await.unwrap(), 2);
        assert_eq!(head(&db, "none").await.unwrap(), 0);
        let events = after(&db, "s", 1, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].offset, 2);
    }
    palisade_store::both_backends!(streams_are_numbered_without_gaps);
}
