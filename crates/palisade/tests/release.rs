//! SUP-1: a release is checked as its users would check it. scripts/release signs the
//! checksums with OpenSSL; `palisade verify-release` accepts the files it signed and refuses a
//! changed file, a changed list, another key and a file the list does not name. The SBOM of the
//! release binary is valid CycloneDX 1.5 and pins every crate to its Cargo.lock checksum.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::binary;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn new_key(path: &Path) {
    ok(&Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(path)
        .output()
        .unwrap());
}

fn verify(key: &Path, files: &[&Path]) -> Output {
    Command::new(binary())
        .arg("verify-release")
        .arg("--key")
        .arg(key)
        .args(files)
        .output()
        .unwrap()
}

/// The verdict of each file, by name: its digest, or why it failed.
fn verdicts(stdout: &str) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(report["signature"], "valid");
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let verdict = if f["verified"] == true {
                &f["sha256"]
            } else {
                &f["reason"]
            };
            (f["file"].as_str().unwrap().to_owned(), verdict.clone())
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A refusal: exit 1, the stdout report (if the signature verified) and stderr.
fn refused(out: &Output) -> (String, String) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn signed_releases_verify_and_tampering_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    std::fs::create_dir(&dist).unwrap();
    let key = tmp.path().join("release.pem");
    new_key(&key);
    let (bin, sbom) = (
        dist.join("palisade-9.9.9-x86_64-linux"),
        dist.join("palisade-9.9.9.cdx.json"),
    );
    std::fs::write(&bin, b"\x7fELF pretend binary").unwrap();
    std::fs::write(&sbom, b"{\"bomFormat\":\"CycloneDX\"}").unwrap();

    // Signing needs the key.
    let unsigned = Command::new(repo().join("scripts/release"))
        .arg("sign")
        .arg(&dist)
        .env_remove("PALISADE_RELEASE_KEY")
        .output()
        .unwrap();
    assert_eq!(unsigned.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unsigned.stderr).contains("the Ed25519 release key is needed")
    );

    ok(&Command::new(repo().join("scripts/release"))
        .args(["sign", "--key"])
        .arg(&key)
        .arg(&dist)
        .output()
        .unwrap());
    // The list is what sha256sum checks, and names exactly the release files.
    let listed = ok(&Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dist)
        .output()
        .unwrap());
    assert_eq!(
        listed,
        "palisade-9.9.9-x86_64-linux: OK\npalisade-9.9.9.cdx.json: OK\n"
    );
    let public = dist.join("release-key.pub");
    let out = ok(&verify(&public, &[&bin, &sbom]));
    let digest = |path: &Path| {
        let line = ok(&Command::new("sha256sum").arg(path).output().unwrap());
        line.split_whitespace().next().unwrap().to_owned()
    };
    let (bin_digest, sbom_digest) = (digest(&bin), digest(&sbom));
    assert_eq!(
        verdicts(&out),
        serde_json::json!({
            "palisade-9.9.9-x86_64-linux": bin_digest,
            "palisade-9.9.9.cdx.json": sbom_digest,
        })
    );
    // With no file named, every listed file is checked.
    let all = ok(&Command::new(binary())
        .args(["verify-release", "--key"])
        .arg(&public)
        .arg("--sums")
        .arg(dist.join("SHA256SUMS"))
        .output()
        .unwrap());
    assert_eq!(verdicts(&all), verdicts(&out));

    // Another key: nothing is trusted.
    let other = tmp.path().join("other.pem");
    new_key(&other);
    let other_pub = tmp.path().join("other.pub");
    ok(&Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&other)
        .arg("-out")
        .arg(&other_pub)
        .output()
        .unwrap());
    let (_, err) = refused(&verify(&other_pub, &[&bin]));
    assert!(
        err.contains("SHA256SUMS is not signed by this key: do not use these files"),
        "{err}"
    );

    // A file not in the list.
    let stray = dist.join("palisade-9.9.9-extra");
    std::fs::write(&stray, b"extra").unwrap();
    let (out, err) = refused(&verify(&public, &[&stray]));
    assert_eq!(
        verdicts(&out),
        serde_json::json!({
            "palisade-9.9.9-extra": "palisade-9.9.9-extra is not listed in the signed SHA256SUMS"
        })
    );
    assert!(err.contains("1 of 1 file(s) failed verification"), "{err}");

    // A changed binary.
    std::fs::write(&bin, b"\x7fELF backdoored binary").unwrap();
    let (out, err) = refused(&verify(&public, &[&bin, &sbom]));
    assert_eq!(
        verdicts(&out),
        serde_json::json!({
            "palisade-9.9.9-x86_64-linux": format!(
                "palisade-9.9.9-x86_64-linux does not match its signed checksum (expected {bin_digest}, got {})",
                digest(&bin)
            ),
            "palisade-9.9.9.cdx.json": sbom_digest,
        })
    );
    assert!(err.contains("1 of 2 file(s) failed verification"), "{err}");

    // A list changed to match it: the signature no longer verifies.
    let sums = dist.join("SHA256SUMS");
    let changed = ok(&Command::new("sha256sum")
        .arg("palisade-9.9.9-x86_64-linux")
        .current_dir(&dist)
        .output()
        .unwrap());
    let text = std::fs::read_to_string(&sums).unwrap();
    let rewritten: String = text
        .lines()
        .map(|l| {
            if l.ends_with("x86_64-linux") {
                changed.trim_end().to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(&sums, rewritten).unwrap();
    let (_, err) = refused(&verify(&public, &[&bin]));
    assert!(err.contains("is not signed by this key"), "{err}");
}

/// `name version` → checksum, for every crates.io package in Cargo.lock.
fn locked_checksums() -> HashMap<(String, String), String> {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let mut out = HashMap::new();
    for block in lock.split("[[package]]") {
        let field = |k: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        if let (Some(n), Some(v), Some(c)) = (field("name"), field("version"), field("checksum")) {
            out.insert((n, v), c);
        }
    }
    out
}

#[test]
fn the_sbom_is_cyclonedx_and_pins_every_crate_to_its_locked_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    ok(&Command::new(repo().join("scripts/release"))
        .arg("sbom")
        .arg(tmp.path())
        .output()
        .unwrap());
    let path = tmp
        .path()
        .join(format!("palisade-{}.cdx.json", env!("CARGO_PKG_VERSION")));
    let text = std::fs::read_to_string(&path).unwrap();
    // Validated by the CycloneDX project's own library against the 1.5 JSON schema.
    let python = std::env::var("PALISADE_TEST_CYCLONEDX_PYTHON")
        .unwrap_or_else(|_| "/opt/cyclonedx/bin/python".into());
    let check = "import sys\nfrom cyclonedx.schema import SchemaVersion\nfrom cyclonedx.validation.json import JsonStrictValidator\nerr = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\nprint(err or 'valid')\nsys.exit(1 if err else 0)\n";
    let out = ok(&Command::new(python)
        .args(["-c", check])
        .arg(&path)
        .output()
        .unwrap());
    assert_eq!(out, "valid\n");
    let sbom: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(sbom["specVersion"], "1.5");
    assert_eq!(sbom["metadata"]["component"]["name"], "palisade");
    assert_eq!(sbom["metadata"]["component"]["type"], "application");
    let locked = locked_checksums();
    let mut registry = 0;
    for c in sbom["components"].as_array().unwrap() {
        let (name, version) = (c["name"].as_str().unwrap(), c["version"].as_str().unwrap());
        if !c["bom-ref"].as_str().unwrap().starts_with("registry+") {
            assert!(name.starts_with("palisade-"), "{c}");
            continue;
        }
        registry += 1;
        let hash = c["hashes"][0]["content"].as_str().unwrap_or_default();
        assert_eq!(
            Some(&hash.to_owned()),
            locked.get(&(name.to_owned(), version.to_owned())),
            "{name} {version}"
        );
        assert_eq!(c["purl"], format!("pkg:cargo/{name}@{version}"));
    }
    assert!(registry > 200, "{registry} crates");
    for expected in ["rustls", "aws-lc-rs", "tokio", "sqlx"] {
        assert!(
            sbom["components"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == expected),
            "{expected}"
        );
    }
}
