//! External conformance data for the Merkle tree (AUD-3): the transparency-dev proof probes
//! (every valid and every must-reject case) and byte-exact proof generation against the
//! Certificate Transparency reference tree. The vectors are public test data, kept in
//! `tests/vectors/` with their sources (`tests/vectors/SOURCES.md`).

use data_encoding::{BASE64, HEXLOWER};
use palisade_tlog::merkle::{
    self, Hash, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn b64(v: &Value) -> Vec<u8> {
    BASE64.decode(v.as_str().unwrap_or("").as_bytes()).unwrap()
}

fn proof(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default()
}

/// Every probe file of one transparency-dev vector family, parsed.
fn probes(family: &str) -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    json_files(
        &testdata()
            .join("transparency-dev-merkle/testdata")
            .join(family),
        &mut files,
    );
    assert!(files.len() >= 90, "{family}: {} files", files.len());
    files
        .into_iter()
        .map(|f| {
            let v = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            (f, v)
        })
        .collect()
}

#[test]
fn transparency_dev_inclusion_probes() {
    let (mut valid, mut rejected) = (0, 0);
    for (f, v) in probes("inclusion") {
        let got = verify_inclusion(
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &b64(&v["leafHash"]),
            &proof(&v["proof"]),
            &b64(&v["root"]),
        );
        let want_err = v["wantErr"].as_bool().unwrap();
        assert_eq!(
            got.is_err(),
            want_err,
            "{}: {} -> {got:?}",
            f.display(),
            v["desc"]
        );
        if want_err { rejected += 1 } else { valid += 1 }
    }
    assert!(
        valid >= 6 && rejected >= 80,
        "valid {valid}, rejected {rejected}"
    );
}

#[test]
fn transparency_dev_consistency_probes() {
    for (f, v) in probes("consistency") {
        let got = verify_consistency(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
            &proof(&v["proof"]),
        );
        assert_eq!(
            got.is_err(),
            v["wantErr"].as_bool().unwrap(),
            "{}: {} -> {got:?}",
            f.display(),
            v["desc"]
        );
    }
}

fn hex_hash(v: &Value) -> Hash {
    HEXLOWER
        .decode(v.as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn ct_reference_tree_proofs_are_byte_exact() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("ct-cpp/reference-tree.json")).unwrap(),
    )
    .unwrap();
    let leaves: Vec<Hash> = doc["leaf_inputs_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| leaf_hash(&HEXLOWER.decode(h.as_str().unwrap().as_bytes()).unwrap()))
        .collect();
    assert_eq!(root(&[]), hex_hash(&doc["empty_tree_root"]));
    assert_eq!(merkle::empty_root(), hex_hash(&doc["empty_tree_root"]));
    let roots = doc["roots_by_size"].as_object().unwrap();
    assert_eq!(roots.len(), leaves.len());
    for (size, expected) in roots {
        let size: usize = size.parse().unwrap();
        assert_eq!(
            root(&leaves[..size]),
            hex_hash(expected),
            "root of size {size}"
        );
    }
    let mut checked = 0;
    for case in doc["inclusion_paths"].as_array().unwrap() {
        let (index, size) = (
            case["leaf_index_1based"].as_u64().unwrap(),
            case["tree_size"].as_u64().unwrap(),
        );
        if index == 0 || size == 0 {
            continue; // the reference's "no such leaf" rows
        }
        let expected: Vec<Hash> = case["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex_hash)
            .collect();
        assert_eq!(
            inclusion_proof(&leaves[..size as usize], index - 1).unwrap(),
            expected,
            "{case}"
        );
        checked += 1;
    }
    for case in doc["consistency_proofs"].as_array().unwrap() {
        let (m, n) = (
            case["size1"].as_u64().unwrap(),
            case["size2"].as_u64().unwrap(),
        );
        let expected: Vec<Hash> = case["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex_hash)
            .collect();
        assert_eq!(
            consistency_proof(&leaves[..n as usize], m).unwrap(),
            expected,
            "{case}"
        );
        checked += 1;
    }
    assert_eq!(checked, 9, "every non-empty reference case was checked");
}

fn notes_doc() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(testdata().join("notes/signed-note-and-hasher.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn signed_note_vectors() {
    use palisade_tlog::note::{Signer, Verifier, open};
    let doc = notes_doc();
    let c2sp = &doc["c2sp_signed_note_example"];
    let v = Verifier::from_vkey(c2sp["vkey"].as_str().unwrap()).unwrap();
    let (text, names) = open(c2sp["note"].as_str().unwrap(), std::slice::from_ref(&v)).unwrap();
    assert_eq!(text, "This is an example message.\n");
    assert_eq!(names, vec!["example.com/foo".to_string()]);

    let go = &doc["go_sumdb_note_PeterNeumann"];
    let signer = Signer::from_skey(go["skey"].as_str().unwrap()).unwrap();
    assert_eq!(signer.vkey(), go["vkey"].as_str().unwrap());
    let signed = signer.sign(go["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        signed,
        go["signed_note"].as_str().unwrap(),
        "byte-exact signature"
    );
    let v = Verifier::from_vkey(go["vkey"].as_str().unwrap()).unwrap();
    assert!(open(&signed, &[v]).is_ok());

    let tree = &doc["go_sumdb_tlog_tree_note"];
    assert_eq!(
        BASE64.encode(&leaf_hash(tree["record"].as_str().unwrap().as_bytes())),
        tree["record_hash_b64"].as_str().unwrap()
    );

    let hasher = &doc["rfc6962_hasher"];
    let hex = |k: &str| {
        HEXLOWER
            .decode(hasher[k].as_str().unwrap().as_bytes())
            .unwrap()
    };
    assert_eq!(merkle::empty_root().to_vec(), hex("empty_tree"));
    assert_eq!(leaf_hash(b"").to_vec(), hex("leaf_empty"));
    assert_eq!(leaf_hash(b"L123456").to_vec(), hex("leaf_L123456"));
}

#[test]
fn tessera_checkpoints_verify_and_match_the_entries() {
    use palisade_tlog::note::{Checkpoint, Verifier, open};
    let doc = notes_doc();
    let tessera = &doc["tessera_testdata_log"];
    let v = Verifier::from_vkey(tessera["vkey"].as_str().unwrap()).unwrap();
    let entries: Vec<Hash> = tessera["entries_in_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| leaf_hash(e.as_str().unwrap().as_bytes()))
        .collect();
    let dir = testdata().join("tessera-log/testdata/log");
    for n in 0..=15usize {
        let note = std::fs::read_to_string(dir.join(format!("checkpoint.{n}"))).unwrap();
        let (text, _) =
            open(&note, std::slice::from_ref(&v)).unwrap_or_else(|e| panic!("checkpoint.{n}: {e}"));
        let c = Checkpoint::parse(text).unwrap();
        assert_eq!(c.origin, "example.com/log/testdata");
        assert_eq!(c.size, n as u64);
        assert_eq!(c.root, root(&entries[..n]), "checkpoint.{n}");
        let tampered = note.replacen(&format!("\n{n}\n"), &format!("\n{}\n", n + 1), 1);
        assert!(open(&tampered, std::slice::from_ref(&v)).is_err());
    }
}
