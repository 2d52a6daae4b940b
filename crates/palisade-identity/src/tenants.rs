//! Tenants (IDN-8): the organisations that own accounts, clients and content. A tenant id is a
//! short lowercase name (`acme`, `north-wind`), typed at sign-in to name the organisation.

use palisade_store::{Db, StoreError, now_ms};

/// A tenant id: 2 to 40 of `a-z`, `0-9` and `-`, starting with a letter.
pub fn parse_id(raw: &str) -> Option<&str> {
    let ok = (2..=40).contains(&raw.len())
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(raw)
}

/// Creates a tenant; false when the id is taken.
pub async fn create(db: &Db, id: &str, name: &str) -> Result<bool, StoreError> {
    let inserted = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(now_ms())
        .execute(db.pool())
        .await
        .map_err(StoreError::from);
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn exists(db: &Db, id: &str) -> Result<bool, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_short_lowercase_names() {
        for good in ["acme", "north-wind", "t2", "default"] {
            assert_eq!(parse_id(good), Some(good));
        }
        for bad in [
            "",
            "a",
            "Acme",
            "2fast",
            "-x",
            "a_b",
            "a b",
            &"x".repeat(41),
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
