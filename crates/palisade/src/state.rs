//! Opening what every command shares: the data directory, the database, the sealing key.

use crate::config::Config;
use anyhow::{Context, Result, bail};
use palisade_crypto::SealingKey;
use palisade_store::Db;
use std::path::Path;

pub fn ensure_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))
}

pub async fn open_database(config: &Config) -> Result<Db> {
    ensure_data_dir(config)?;
    let db = Db::connect(&config.database_url(), config.database.max_connections)
        .await
        .context("cannot open the database")?;
    db.migrate().await.context("cannot apply migrations")?;
    Ok(db)
}

/// The key that seals secrets at rest: from configuration, or generated once into the data
/// directory (mode 0600) for the embedded default.
pub fn sealing_key(config: &Config) -> Result<SealingKey> {
    let encoded = match &config.secrets.sealing_key {
        Some(key) => key.expose().clone(),
        None => read_or_create_key_file(&config.data_dir.join("sealing.key"))?,
    };
    let bytes = data_encoding::BASE64
        .decode(encoded.trim().as_bytes())
        .context("secrets.sealing_key is not valid base64")?;
    if bytes.len() != 32 {
        bail!("secrets.sealing_key must decode to 32 bytes");
    }
    SealingKey::from_bytes(&bytes).context("secrets.sealing_key")
}

fn read_or_create_key_file(path: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()));
    }
    let encoded = data_encoding::BASE64.encode(&palisade_crypto::random_bytes::<32>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(encoded.as_bytes())?;
    Ok(encoded)
}
