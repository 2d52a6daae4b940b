//! Recovery codes (IDN-6): ten random 80-bit codes shown once, stored as SHA-256 digests bound
//! to the account, each usable exactly once.

use data_encoding::BASE32_NOPAD;

use palisade_store::{Db, StoreError, now_ms};

pub const COUNT: usize = 10;

/// Codes look like `ABCD-EFGH-IJKL-MNOP`: 16 base32 characters (80 bits).
pub fn generate() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let raw = BASE32_NOPAD.encode(&palisade_crypto::random_bytes::<10>());
            raw.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// Uppercase without separators, so `abcd efgh-…` and `ABCD-EFGH…` are the same code.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn digest(user_id: &str, code: &str) -> String {
    palisade_crypto::sha256_hex(format!("{user_id}:{}", normalize(code)).as_bytes())
}

/// Whether the input has the shape of a recovery code (rather than a 6-digit TOTP code).
pub fn looks_like_code(input: &str) -> bool {
    normalize(input).len() == 16
}

/// Replaces all of the user's codes with `codes`.
pub async fn replace(db: &Db, user_id: &str, codes: &[String]) -> Result<(), StoreError> {
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for code in codes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(digest(user_id, code))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Marks the code used if it is one of the user's unused codes; one atomic update, so a code
/// presented twice at once is accepted once.
pub async fn consume(db: &Db, user_id: &str, code: &str) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
    )
    .bind(now_ms())
    .bind(user_id)
    .bind(digest(user_id, code))
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn remaining(db: &Db, user_id: &str) -> Result<i64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{Email, create};

    #[test]
    fn codes_are_distinct_and_well_formed() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), COUNT);
        assert!(codes.iter().all(|c| c.len() == 19 && looks_like_code(c)));
        assert!(!looks_like_code("123456"));
    }

    async fn each_code_works_once(db: Db) {
        let alice = create(&db, "default", &Email::parse("a@example.com").unwrap(), "h")
            .await
            .unwrap();
        let bob = create(&db, "default", &Email::parse("b@example.com").unwrap(), "h")
            .await
            .unwrap();
        let codes = generate();
        replace(&db, &alice, &codes).await.unwrap();
        assert!(
            !consume(&db, &bob, &codes[0]).await.unwrap(),
            "codes are bound to their account"
        );
        assert!(
            consume(&db, &alice, &codes[0].to_lowercase().replace('-', " "))
                .await
                .unwrap()
        );
        assert!(
            !consume(&db, &alice, &codes[0]).await.unwrap(),
            "single use"
        );
        assert_eq!(remaining(&db, &alice).await.unwrap(), (COUNT - 1) as i64);
        replace(&db, &alice, &generate()).await.unwrap();
        assert!(
            !consume(&db, &alice, &codes[1]).await.unwrap(),
            "regenerating voids old codes"
        );
    }
    palisade_store::both_backends!(each_code_works_once);
}
