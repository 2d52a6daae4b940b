//! One order (RFC 8555 §7.4): new order (naming the certificate it replaces, RFC 9773 §5), a
//! challenge per authorization (http-01 and tls-alpn-01 answered from shared storage, dns-01
//! through the operator's hook), finalize with a new key, download.

use super::{AcmeError, store};
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};
use palisade_store::Db;
use palisade_tls::{AcmeChallenge, AcmeSettings};
use std::time::Duration;

/// How long the CA is given to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .timeout(Duration::from_secs(90));

/// A certificate chain (PEM) and its new key (PEM).
pub(crate) async fn obtain(
    account: &Account,
    settings: &AcmeSettings,
    db: &Db,
    replaces: Option<&CertificateIdentifier<'_>>,
) -> Result<(String, String), AcmeError> {
    let identifiers: Vec<Identifier> = settings
        .identifiers
        .iter()
        .map(|name| Identifier::Dns(name.clone()))
        .collect();
    let mut new = NewOrder::new(&identifiers);
    if let Some(replaced) = replaces {
        new = new.replaces(replaced.clone());
    }
    let mut order = account.new_order(&new).await?;
    let mut published = Vec::new();
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            if authorization.status == AuthorizationStatus::Valid {
                continue;
            }
            let kind = match settings.challenge {
                AcmeChallenge::Http01 => ChallengeType::Http01,
                AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                AcmeChallenge::Dns01 => ChallengeType::Dns01,
            };
            let mut challenge = authorization
                .challenge(kind)
                .ok_or(AcmeError::NoChallenge(settings.challenge))?;
            let key_authorization = challenge.key_authorization();
            match settings.challenge {
                AcmeChallenge::Http01 => {
                    store::put_challenge(db, &challenge.token, key_authorization.as_str()).await?;
                    published.push(Published::Http(challenge.token.clone()));
                }
                AcmeChallenge::TlsAlpn01 => {
                    let key = alpn_key(&challenge.identifier().to_string());
                    store::put_challenge(db, &key, key_authorization.as_str()).await?;
                    published.push(Published::Http(key));
                }
                AcmeChallenge::Dns01 => {
                    let record = format!(
                        "_acme-challenge.{}",
                        challenge.identifier().to_string().trim_start_matches("*.")
                    );
                    let value = key_authorization.dns_value();
                    dns_hook(settings, "set", &record, &value).await?;
                    published.push(Published::Dns(record, value));
                }
            }
            challenge.set_ready().await?;
        }
        let status = order.poll_ready(&POLL).await?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Order(format!("the order is {status:?}")));
        }
        let key = order.finalize().await?;
        let chain = order.poll_certificate(&POLL).await?;
        Ok((chain, key))
    }
    .await;
    // Answers are withdrawn whatever happened; a withdrawal that fails only leaves a stale
    // answer that the CA no longer asks for.
    for answer in published {
        let cleared = match &answer {
            Published::Http(token) => store::clear_challenge(db, token)
                .await
                .map_err(AcmeError::from),
            Published::Dns(record, value) => dns_hook(settings, "clear", record, value).await,
        };
        if let Err(e) = cleared {
            tracing::warn!(error = %e, "cannot withdraw an ACME challenge answer");
        }
    }
    result
}

/// Where a tls-alpn-01 answer for `name` is kept among the challenges.
pub(crate) fn alpn_key(name: &str) -> String {
    format!("tls-alpn-01:{name}")
}

enum Published {
    Http(String),
    Dns(String, String),
}

async fn dns_hook(
    settings: &AcmeSettings,
    action: &str,
    record: &str,
    value: &str,
) -> Result<(), AcmeError> {
    let hook = settings
        .dns_hook
        .as_ref()
        .ok_or_else(|| AcmeError::Hook("tls.acme.dns_hook is not set".into()))?;
    let run = tokio::process::Command::new(hook)
        .args([action, record, value])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .map_err(|_| AcmeError::Hook("the DNS hook ran for more than 120 s".into()))?
        .map_err(|e| AcmeError::Hook(format!("cannot run {}: {e}", hook.display())))?;
    if !output.status.success() {
        return Err(AcmeError::Hook(format!(
            "{} {action} exited with {}",
            hook.display(),
            output.status
        )));
    }
    Ok(())
}
