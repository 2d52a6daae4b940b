//! `scan tls host:port`: what a TLS server accepts (versions from SSL 3.0 to TLS 1.3, suites
//! and groups including post-quantum hybrids, whose order it follows), the chain it serves,
//! OCSP stapling, ALPN and HSTS, and verdicts against Mozilla's modern and intermediate
//! profiles.

mod cert;
mod probe;
mod profile;
pub mod rules;
mod session;
pub mod suites;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rustls::RootCertStore;
pub use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;

use crate::ScanError;
use crate::finding::{Finding, Report, Severity};
use probe::{Accepts, Prober};
use profile::Profile;
use suites::{Weakness, group_name, suite_name};
use wire::{SSL3, TLS10, TLS11, TLS12, TLS13, version_name};

/// What to scan and whom to trust.
pub struct Options {
    /// `host:port` (port 443 when left out; IPv6 addresses in brackets).
    pub target: String,
    /// The name to ask for (SNI) and to check the certificate against, when it is not the
    /// target's host.
    pub server_name: Option<String>,
    /// Extra trust anchors, beside the system's when `system_roots` is set.
    pub ca_certs: Vec<CertificateDer<'static>>,
    pub system_roots: bool,
    /// For each connection and each read.
    pub timeout: Duration,
    pub progress: bool,
}

pub async fn scan(options: Options) -> Result<Report, ScanError> {
    let (host, port) = split_target(&options.target)?;
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| ScanError::Io(format!("{host}: {e}")))?
        .next()
        .ok_or_else(|| ScanError::Io(format!("{host} has no address")))?;
    let name_text = options.server_name.clone().unwrap_or_else(|| host.clone());
    let name = ServerName::try_from(name_text.clone())
        .map_err(|_| ScanError::Usage(format!("{name_text} is not a host name or address")))?;
    let sni = matches!(name, ServerName::DnsName(_)).then(|| name_text.clone());
    let (timeout, progress) = (options.timeout, options.progress);
    let accepts = tokio::task::spawn_blocking(move || {
        Prober {
            addr,
            server_name: sni.as_deref(),
            timeout,
            progress,
        }
        .run()
    })
    .await
    .map_err(|e| ScanError::Io(e.to_string()))??;
    if accepts.versions.is_empty() {
        return Err(ScanError::Tls(format!(
            "{addr} accepts no version from SSL 3.0 to TLS 1.3"
        )));
    }
    let mut report = Report::new(options.target.clone());
    let modern = accepts.versions.iter().any(|&v| v >= TLS12);
    let session = if modern {
        let name = name.clone();
        tokio::task::spawn_blocking(move || session::handshake(addr, name, timeout))
            .await
            .map_err(|e| ScanError::Io(e.to_string()))?
    } else {
        Err("it speaks neither TLS 1.2 nor TLS 1.3".into())
    };
    let chain: Vec<CertificateDer<'static>> = match &session {
        Ok(s) => s.chain.clone(),
        Err(_) => accepts
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect(),
    };
    let roots = roots(&options);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let leaf = cert::audit(&chain, &name, &roots, now, &mut report);
    protocols(&accepts, &mut report);
    suites(&accepts, &mut report);
    groups(&accepts, &mut report);
    match &session {
        Ok(s) => stapling_and_alpn(s, leaf.as_ref(), &mut report),
        Err(why) => report.add(Finding::new(
            &rules::OCSP,
            Severity::Info,
            format!(
                "OCSP stapling and ALPN not checked: no TLS 1.2/1.3 handshake completed ({why})"
            ),
        )),
    }
    if modern {
        hsts(&options.target, &host, addr, timeout, &mut report).await;
    }
    verdicts(&accepts, leaf.as_ref(), &mut report);
    report.sort();
    Ok(report)
}

/// The certificates of a PEM file, for [`Options::ca_certs`].
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ScanError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ScanError::Usage(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ScanError::Usage("no PEM certificate found".into()));
    }
    Ok(certs)
}

fn split_target(target: &str) -> Result<(String, u16), ScanError> {
    let bad = || ScanError::Usage(format!("{target} is not host:port"));
    let (host, port) = match target.rsplit_once(':') {
        _ if target.starts_with('[') && target.ends_with(']') => (target, 443),
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.starts_with('[')) => {
            (h, p.parse().map_err(|_| bad())?)
        }
        _ if !target.is_empty() => (target, 443),
        _ => return Err(bad()),
    };
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

fn roots(options: &Options) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    if options.system_roots {
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    roots.add_parsable_certificates(options.ca_certs.iter().cloned());
    roots
}

fn protocols(accepts: &Accepts, report: &mut Report) {
    let names: Vec<&str> = accepts.versions.iter().map(|&v| version_name(v)).collect();
    report.add(Finding::new(
        &rules::PROTOCOLS,
        Severity::Info,
        format!("accepts {}", names.join(", ")),
    ));
    for (version, rule, severity) in [
        (SSL3, &rules::SSL3, Severity::Critical),
        (TLS10, &rules::TLS10, Severity::Medium),
        (TLS11, &rules::TLS11, Severity::Medium),
    ] {
        if accepts.versions.contains(&version) {
            report.add(Finding::new(
                rule,
                severity,
                format!("{} is accepted", version_name(version)),
            ));
        }
    }
    if !accepts.versions.contains(&TLS13) {
        report.add(Finding::new(
            &rules::NO_TLS13,
            Severity::Low,
            "TLS 1.3 is refused",
        ));
    }
}

fn suites(accepts: &Accepts, report: &mut Report) {
    let mut weak: BTreeMap<Weakness, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
    for (&version, list) in &accepts.suites {
        let order = match accepts.server_order.get(&version) {
            Some(true) => " (the server's order)",
            Some(false) => " (the client's order)",
            None => "",
        };
        let names: Vec<String> = list.iter().map(|&s| suite_name(s)).collect();
        report.add(Finding::new(
            &rules::SUITES,
            Severity::Info,
            format!("{}: {}{order}", version_name(version), names.join(", ")),
        ));
        for name in names {
            if let Some(w) = suites::weakness(&name) {
                weak.entry(w)
                    .or_default()
                    .entry(name)
                    .or_default()
                    .push(version_name(version));
            }
        }
    }
    for (weakness, found) in weak {
        let (rule, severity) = match weakness {
            Weakness::Broken => (&rules::SUITE_BROKEN, Severity::Critical),
            Weakness::Rc4 => (&rules::SUITE_RC4, Severity::High),
            Weakness::TripleDes => (&rules::SUITE_3DES, Severity::Medium),
            Weakness::NoForwardSecrecy => (&rules::SUITE_NO_FS, Severity::Medium),
            Weakness::Cbc => (&rules::SUITE_CBC, Severity::Low),
        };
        let list: Vec<String> = found
            .iter()
            .map(|(name, versions)| format!("{name} ({})", versions.join(", ")))
            .collect();
        report.add(Finding::new(
            rule,
            severity,
            format!("accepted: {}", list.join("; ")),
        ));
    }
    if let Some(bits) = accepts.dh_bits.filter(|&b| b < 2048) {
        report.add(Finding::new(
            &rules::DH_WEAK,
            Severity::Medium,
            format!("DHE uses a {bits}-bit prime"),
        ));
    }
}

fn groups(accepts: &Accepts, report: &mut Report) {
    let names: Vec<String> = accepts.groups.iter().map(|&g| group_name(g)).collect();
    let pq = accepts.groups.iter().any(|&g| suites::is_post_quantum(g));
    report.add(Finding::new(
        &rules::GROUPS,
        Severity::Info,
        format!(
            "accepts {}; {}",
            if names.is_empty() {
                "no named group".to_owned()
            } else {
                names.join(", ")
            },
            if pq {
                "a post-quantum hybrid is offered"
            } else {
                "no post-quantum group"
            }
        ),
    ));
}

fn stapling_and_alpn(s: &session::Session, leaf: Option<&cert::Leaf>, report: &mut Report) {
    let responder = leaf.and_then(|l| l.ocsp_responder.as_deref());
    match (s.ocsp.is_empty(), responder) {
        (false, _) => report.add(Finding::new(
            &rules::OCSP,
            Severity::Info,
            format!("an OCSP response of {} bytes is stapled", s.ocsp.len()),
        )),
        (true, Some(url)) => report.add(Finding::new(
            &rules::OCSP_NOT_STAPLED,
            Severity::Low,
            format!("no OCSP response stapled, though the certificate names {url}"),
        )),
        (true, None) => report.add(Finding::new(
            &rules::OCSP,
            Severity::Info,
            "no OCSP response stapled; the certificate names no OCSP responder",
        )),
    }
    report.add(Finding::new(
        &rules::ALPN,
        Severity::Info,
        match &s.alpn {
            Some(p) => format!("chose {p} from h2, http/1.1"),
            None => "chose no application protocol from h2, http/1.1".into(),
        },
    ));
}

/// Reads the Strict-Transport-Security header of `/`, whatever the certificate.
async fn hsts(target: &str, host: &str, addr: SocketAddr, timeout: Duration, report: &mut Report) {
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .resolve(host, addr)
        .build();
    let answer = match client {
        Ok(c) => c.get(format!("https://{target}/")).send().await,
        Err(e) => Err(e),
    };
    let header = match answer {
        Ok(r) => r
            .headers()
            .get(reqwest::header::STRICT_TRANSPORT_SECURITY)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        Err(e) => {
            report.add(Finding::new(
                &rules::HSTS,
                Severity::Info,
                format!("HSTS not checked: GET / failed ({e})"),
            ));
            return;
        }
    };
    let Some(header) = header else {
        report.add(Finding::new(
            &rules::NO_HSTS,
            Severity::Low,
            "GET / answers without Strict-Transport-Security",
        ));
        return;
    };
    let max_age = header
        .split(';')
        .filter_map(|d| d.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("max-age"))
        .and_then(|(_, v)| v.trim_matches('"').parse::<u64>().ok());
    match max_age {
        Some(age) if age >= 180 * 86_400 => report.add(Finding::new(
            &rules::HSTS,
            Severity::Info,
            format!("Strict-Transport-Security: {header}"),
        )),
        _ => report.add(Finding::new(
            &rules::HSTS_SHORT,
            Severity::Low,
            format!("Strict-Transport-Security: {header} (max-age under 180 days)"),
        )),
    }
}

fn verdicts(accepts: &Accepts, leaf: Option<&cert::Leaf>, report: &mut Report) {
    let intermediate = profile::deviations(Profile::Intermediate, accepts, leaf);
    report.add(if intermediate.is_empty() {
        Finding::new(
            &rules::NOT_INTERMEDIATE,
            Severity::Info,
            "meets Mozilla's intermediate profile (6.0)",
        )
    } else {
        Finding::new(
            &rules::NOT_INTERMEDIATE,
            Severity::Medium,
            format!(
                "does not meet Mozilla's intermediate profile (6.0): {}",
                intermediate.join("; ")
            ),
        )
    });
    let modern = profile::deviations(Profile::Modern, accepts, leaf);
    report.add(Finding::new(
        &rules::MODERN,
        Severity::Info,
        if modern.is_empty() {
            "meets Mozilla's modern profile (6.0)".to_owned()
        } else {
            format!(
                "does not meet Mozilla's modern profile (6.0): {}",
                modern.join("; ")
            )
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_host_and_port() {
        let t = |s| split_target(s).map_err(|e| e.to_string());
        assert_eq!(
            t("example.test:8443").unwrap(),
            ("example.test".into(), 8443)
        );
        assert_eq!(t("example.test").unwrap(), ("example.test".into(), 443));
        assert_eq!(t("[::1]:8443").unwrap(), ("::1".into(), 8443));
        assert_eq!(t("[::1]").unwrap(), ("::1".into(), 443));
        assert_eq!(t("127.0.0.1:1").unwrap(), ("127.0.0.1".into(), 1));
        assert!(
            t("example.test:http")
                .unwrap_err()
                .contains("not host:port")
        );
        assert!(t("").is_err());
    }
}
