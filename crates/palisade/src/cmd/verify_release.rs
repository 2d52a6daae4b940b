//! `palisade verify-release`: checks downloaded release files against the release's
//! SHA256SUMS and its Ed25519 signature (both written by scripts/release). The signature is
//! checked first, against a public key the user supplies (the one published with the
//! project, never one taken from the download), and a file passes only if the signed list
//! names it with the same digest. The result is one JSON document: each file with its digest
//! or why it failed.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use aws_lc_rs::digest;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub(crate) struct VerifyReleaseArgs {
    /// The release's Ed25519 public key (PEM, as published with the project).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The signed checksum list (default: SHA256SUMS beside the first file).
    #[arg(long, value_name = "FILE")]
    sums: Option<PathBuf>,
    /// The signature of the list (default: the list's path with `.sig` added).
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
    /// The downloaded files to check (default: every file the list names, beside it).
    files: Vec<PathBuf>,
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}", path.display()))
}

/// The raw key of a PEM `PUBLIC KEY` holding an Ed25519 key.
fn ed25519_public_key(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| l.trim() != "-----BEGIN PUBLIC KEY-----")
        .skip(1)
        .take_while(|l| l.trim() != "-----END PUBLIC KEY-----")
        .collect();
    let der = data_encoding::BASE64
        .decode(body.trim().as_bytes())
        .map_err(|_| anyhow!("the key is not a PEM public key"))?;
    match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => Ok(key.to_vec()),
        _ => bail!("the key is not an Ed25519 public key"),
    }
}

/// `sha256sum` lines: `<64 hex>  <name>` (or ` *<name>` in binary mode).
fn parse_sums(text: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut sums = HashMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let (digest, name) = line
            .split_once(' ')
            .filter(|(d, _)| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| anyhow!("SHA256SUMS line {} is not `<sha256>  <name>`", n + 1))?;
        let name = name.strip_prefix([' ', '*']).unwrap_or(name);
        sums.insert(name.to_owned(), digest.to_ascii_lowercase());
    }
    Ok(sums)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(data_encoding::HEXLOWER.encode(ctx.finish().as_ref()))
}

pub(crate) fn run(args: VerifyReleaseArgs) -> anyhow::Result<ExitCode> {
    let sums_path = match (&args.sums, args.files.first()) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => f.with_file_name("SHA256SUMS"),
        (None, None) => bail!("name the files to check, or the SHA256SUMS to check them all"),
    };
    let sig_path = args.signature.clone().unwrap_or_else(|| {
        let mut p = sums_path.clone().into_os_string();
        p.push(".sig");
        p.into()
    });
    let key = ed25519_public_key(&String::from_utf8_lossy(&read(&args.key)?))
        .with_context(|| format!("{}", args.key.display()))?;
    let sums_bytes = read(&sums_path)?;
    let signature = data_encoding::BASE64
        .decode(String::from_utf8_lossy(&read(&sig_path)?).trim().as_bytes())
        .map_err(|_| anyhow!("{} is not a base64 signature", sig_path.display()))?;
    UnparsedPublicKey::new(&ED25519, &key)
        .verify(&sums_bytes, &signature)
        .map_err(|_| {
            anyhow!(
                "{} is not signed by this key: do not use these files",
                sums_path.display()
            )
        })?;
    let sums = parse_sums(&String::from_utf8_lossy(&sums_bytes))?;
    let files: Vec<PathBuf> = if args.files.is_empty() {
        let mut names: Vec<&String> = sums.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| sums_path.with_file_name(n))
            .collect()
    } else {
        args.files.clone()
    };
    let mut failed = 0;
    let mut results = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let verdict = match sums.get(&name) {
            None => Err(format!("{name} is not listed in the signed SHA256SUMS")),
            Some(expected) => match sha256_file(file) {
                Ok(actual) if &actual == expected => Ok(actual),
                Ok(actual) => Err(format!(
                    "{name} does not match its signed checksum (expected {expected}, got {actual})"
                )),
                Err(e) => Err(format!("{e:#}")),
            },
        };
        results.push(match verdict {
            Ok(digest) => json!({ "file": name, "verified": true, "sha256": digest }),
            Err(why) => {
                failed += 1;
                json!({ "file": name, "verified": false, "reason": why })
            }
        });
    }
    println!(
        "{:#}",
        json!({ "sums": sums_path, "signature": "valid", "files": results })
    );
    if failed > 0 {
        bail!("{failed} of {} file(s) failed verification", files.len());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_lines_are_parsed_in_both_modes_and_malformed_ones_refused() {
        let d = "a".repeat(64);
        let sums = parse_sums(&format!("{d}  one\n{d} *two\n")).unwrap();
        assert_eq!(sums["one"], d);
        assert_eq!(sums["two"], d);
        assert!(
            parse_sums("abc  one\n")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }

    #[test]
    fn only_ed25519_public_keys_are_accepted() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA7hzp+uUt4kgTaRmukLBOB6xlHD/VW7egMJNIYW2dDyU=\n-----END PUBLIC KEY-----\n";
        assert_eq!(ed25519_public_key(pem).unwrap().len(), 32);
        // A P-256 key.
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5zYOjfnIihezm71REK5zm6M9XG90\n8RdSq5jH8z6EDyB9oT4IEVtsMb21OUDIXICUwG4XYBafj9OQQ7HKqa8FWQ==\n-----END PUBLIC KEY-----\n";
        assert!(
            ed25519_public_key(p256)
                .unwrap_err()
                .to_string()
                .contains("not an Ed25519")
        );
    }
}
