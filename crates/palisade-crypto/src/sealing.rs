use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Encrypts small secrets at rest (TOTP seeds, signing keys) with AES-256-GCM under a key that
/// lives outside the database. Each value gets a fresh random nonce; the associated data binds a
/// ciphertext to its purpose and row, so a sealed value cannot be moved to another column or user.
pub struct SealingKey(LessSafeKey);

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealing key must be 32 bytes")]
    KeyLength,
    #[error("sealed value is malformed or was not sealed with this key and context")]
    Open,
}

impl SealingKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::KeyLength)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Returns `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = crate::random_bytes::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut buf,
            )
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// [`SealingKey::seal`], as base64 text for a database column.
    pub fn seal_text(&self, context: &[u8], plaintext: &[u8]) -> String {
        data_encoding::BASE64.encode(&self.seal(context, plaintext))
    }

    /// Opens what [`SealingKey::seal_text`] wrote.
    pub fn open_text(&self, context: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        let sealed = data_encoding::BASE64
            .decode(sealed.as_bytes())
            .map_err(|_| SealError::Open)?;
        self.open(context, &sealed)
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let key = SealingKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = key.seal(b"totp:user-1", b"seed");
        assert_eq!(key.open(b"totp:user-1", &sealed).unwrap(), b"seed");
        assert!(key.open(b"totp:user-2", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open(b"totp:user-1", &tampered).is_err());
        assert!(key.open(b"totp:user-1", &sealed[..5]).is_err());
    }
}
