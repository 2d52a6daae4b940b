//! Verdicts against Mozilla's server-side TLS guidelines, version 6.0: modern (TLS 1.3 only)
//! and intermediate (TLS 1.2 and 1.3, the recommended default). A verdict lists every way the
//! server departs from the profile.

use super::cert::{Key, Leaf};
use super::probe::Accepts;
use super::suites::{group_name, suite_name};
use super::wire::{TLS12, TLS13, version_name};

const TLS13_SUITES: &[u16] = &[0x1301, 0x1302, 0x1303];
/// ECDHE-{ECDSA,RSA}-AES128-GCM-SHA256, -AES256-GCM-SHA384, -CHACHA20-POLY1305.
const TLS12_SUITES: &[u16] = &[0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8];
/// X25519MLKEM768, X25519, prime256v1, secp384r1.
const GROUPS: &[u16] = &[0x11ec, 0x001d, 0x0017, 0x0018];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Profile {
    Modern,
    Intermediate,
}

/// How the server departs from `profile`; empty when it meets it.
pub(super) fn deviations(profile: Profile, accepts: &Accepts, leaf: Option<&Leaf>) -> Vec<String> {
    let mut out = Vec::new();
    let versions: &[u16] = match profile {
        Profile::Modern => &[TLS13],
        Profile::Intermediate => &[TLS12, TLS13],
    };
    for v in &accepts.versions {
        if !versions.contains(v) {
            out.push(format!("{} should be refused", version_name(*v)));
        }
    }
    if !accepts.versions.contains(&TLS13) {
        out.push("TLS 1.3 should be offered".into());
    }
    for (version, allowed) in [(TLS12, TLS12_SUITES), (TLS13, TLS13_SUITES)] {
        if !versions.contains(&version) {
            continue;
        }
        for s in accepts.suites.get(&version).into_iter().flatten() {
            if !allowed.contains(s) {
                out.push(format!("{} should be refused", suite_name(*s)));
            }
        }
    }
    for g in &accepts.groups {
        if !GROUPS.contains(g) {
            out.push(format!("group {} should be refused", group_name(*g)));
        }
    }
    match leaf {
        None => out.push("no certificate could be read".into()),
        Some(leaf) => {
            if !leaf.valid {
                out.push("the certificate is not valid for this server".into());
            }
            let (key_ok, max_days) = match (profile, &leaf.key) {
                (Profile::Modern, Key::Ec(256 | 384)) => (true, 90),
                (Profile::Modern, _) => (false, 90),
                (Profile::Intermediate, Key::Ec(256 | 384)) => (true, 366),
                (Profile::Intermediate, Key::Rsa(bits)) => (*bits >= 2048, 366),
                (Profile::Intermediate, _) => (false, 366),
            };
            if !key_ok {
                out.push(format!(
                    "a {} certificate key is outside the profile",
                    leaf.key
                ));
            }
            if leaf.lifetime_days > max_days {
                out.push(format!(
                    "the certificate lives {} days, more than {max_days}",
                    leaf.lifetime_days
                ));
            }
        }
    }
    out
}
