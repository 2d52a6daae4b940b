//! What the server accepts, learnt one hand-built ClientHello at a time: each version from
//! SSL 3.0 up, each suite of each version (offer everything, strike out what the server
//! picks, repeat until it refuses), whose order it follows, and each key-exchange group.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::suites::{self, EC_GROUPS, GROUPS, LEGACY};
use super::wire::{self, Accepted, Answer, Hello, KeyExchange, SSL3, TLS10, TLS11, TLS12, TLS13};
use crate::ScanError;

/// Everything the probes learnt.
#[derive(Debug, Default)]
pub(super) struct Accepts {
    /// The versions accepted, oldest first.
    pub(super) versions: Vec<u16>,
    /// Per version, the suites accepted: for TLS 1.2 and earlier in the order the server
    /// chose them from the full list.
    pub(super) suites: BTreeMap<u16, Vec<u16>>,
    /// Per version with two suites or more: whether the server follows its own order.
    pub(super) server_order: BTreeMap<u16, bool>,
    pub(super) groups: Vec<u16>,
    /// The smallest finite-field DH prime seen, in bits.
    pub(super) dh_bits: Option<usize>,
    /// The chain sent in the clear by the newest legacy version, leaf first.
    pub(super) chain: Vec<Vec<u8>>,
}

pub(super) struct Prober<'a> {
    pub(super) addr: SocketAddr,
    pub(super) server_name: Option<&'a str>,
    pub(super) timeout: Duration,
    pub(super) progress: bool,
}

impl Prober<'_> {
    fn ask(
        &self,
        version: u16,
        suites: &[u16],
        groups: &[u16],
    ) -> Result<Option<Accepted>, ScanError> {
        let hello = Hello {
            version,
            suites,
            groups,
            server_name: self.server_name,
        };
        match wire::probe(self.addr, &hello, self.timeout) {
            Ok(Answer::Accepted(a)) => Ok(Some(a)),
            Ok(Answer::Refused(_)) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err(ScanError::Io(format!("{}: {e}", self.addr)))
            }
            // A reset or a timeout is how some servers refuse an offer.
            Err(_) => Ok(None),
        }
    }

    fn say(&self, what: &str) {
        if self.progress {
            eprintln!("scan tls: {what}");
        }
    }

    pub(super) fn run(&self) -> Result<Accepts, ScanError> {
        let mut accepts = Accepts::default();
        let all_groups: Vec<u16> = GROUPS.iter().map(|(c, _)| *c).collect();
        // Post-quantum groups exist only in TLS 1.3; some servers pick one even in a TLS 1.2
        // hello and then fail.
        let classic: Vec<u16> = all_groups
            .iter()
            .copied()
            .filter(|&g| !suites::is_post_quantum(g))
            .collect();
        for version in [SSL3, TLS10, TLS11, TLS12] {
            self.say(&format!("probing {} suites", wire::version_name(version)));
            self.legacy_suites(version, &classic, &mut accepts)?;
        }
        self.say("probing TLS 1.3 suites and groups");
        let tls13: Vec<u16> = suites::TLS13
            .iter()
            .map(|(c, _)| *c)
            .filter(|&s| {
                self.ask(TLS13, &[s], &all_groups)
                    .ok()
                    .flatten()
                    .is_some_and(|a| a.version == TLS13 && a.suite == s)
            })
            .collect();
        if !tls13.is_empty() {
            accepts.versions.push(TLS13);
            for &(group, _) in GROUPS {
                if let Some(a) = self.ask(TLS13, &tls13, &[group])?
                    && a.version == TLS13
                    && a.group == Some(group)
                {
                    accepts.groups.push(group);
                }
            }
            accepts.suites.insert(TLS13, tls13);
        }
        self.tls12_groups(&mut accepts)?;
        for (&version, list) in &accepts.suites {
            let groups = if version == TLS13 {
                &all_groups
            } else {
                &classic
            };
            if let [a, b, ..] = list[..] {
                let first = self.ask(version, &[a, b], groups)?.map(|x| x.suite);
                let second = self.ask(version, &[b, a], groups)?.map(|x| x.suite);
                if first.is_some() && second.is_some() {
                    accepts.server_order.insert(version, first == second);
                }
            }
        }
        Ok(accepts)
    }

    /// Offers every suite `version` can use, strikes out the one chosen, and repeats.
    fn legacy_suites(
        &self,
        version: u16,
        groups: &[u16],
        accepts: &mut Accepts,
    ) -> Result<(), ScanError> {
        let mut offer: Vec<u16> = LEGACY
            .iter()
            .filter(|(_, name)| version == TLS12 || suites::before_tls12(name))
            .map(|(c, _)| *c)
            .collect();
        let mut chosen = Vec::new();
        while let Some(a) = self.ask(version, &offer, groups)? {
            let Some(at) = offer.iter().position(|&s| s == a.suite) else {
                break; // a suite not offered: the server is not to be trusted further
            };
            if a.version != version || a.retry {
                break;
            }
            offer.remove(at);
            chosen.push(a.suite);
            if let Some(KeyExchange::Dhe(bits)) = a.key_exchange {
                accepts.dh_bits = Some(accepts.dh_bits.map_or(bits, |b| b.min(bits)));
            }
            if !a.certificates.is_empty() {
                accepts.chain = a.certificates;
            }
        }
        if !chosen.is_empty() {
            accepts.versions.push(version);
            accepts.suites.insert(version, chosen);
        }
        Ok(())
    }

    /// The elliptic-curve groups a TLS 1.2 ECDHE exchange accepts, one at a time.
    fn tls12_groups(&self, accepts: &mut Accepts) -> Result<(), ScanError> {
        let ecdhe: Vec<u16> = accepts
            .suites
            .get(&TLS12)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&s| suites::suite_name(s).contains("ECDHE"))
            .collect();
        if ecdhe.is_empty() {
            return Ok(());
        }
        for &group in EC_GROUPS {
            if accepts.groups.contains(&group) {
                continue;
            }
            if let Some(a) = self.ask(TLS12, &ecdhe, &[group])?
                && a.key_exchange == Some(KeyExchange::Ecdhe(group))
            {
                accepts.groups.push(group);
            }
        }
        Ok(())
    }
}
