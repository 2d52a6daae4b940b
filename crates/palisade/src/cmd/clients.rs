//! `palisade clients` (OAU-4): register, list and delete OAuth clients. A confidential client's
//! secret is printed once and only its digest is kept. Each change is an audit event.

use crate::config::Config;
use anyhow::{Result, bail};
use clap::Subcommand;
use palisade_audit::{Action, Outcome, SecurityEvent};
use palisade_oauth::clients::{self, AuthMethod, NewClient, Registrar};

#[derive(Subcommand)]
pub(crate) enum ClientsCommand {
    /// Register a client; prints it with its id and, once, its secret.
    Create(Box<CreateArgs>),
    /// List the registered clients.
    List,
    /// Delete a client.
    Delete {
        /// Client ids are base64url and may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

#[derive(clap::Args)]
pub(crate) struct CreateArgs {
    #[arg(long)]
    name: String,
    /// client_secret_basic (default), client_secret_post, private_key_jwt,
    /// tls_client_auth, self_signed_tls_client_auth, or none for public clients.
    #[arg(long, default_value = "client_secret_basic")]
    auth_method: String,
    /// Repeatable: client_credentials, authorization_code, refresh_token.
    #[arg(long = "grant", required = true)]
    grants: Vec<String>,
    /// Repeatable: the scopes the client may be granted.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Repeatable: exact redirect URIs (https, or http on a loopback address).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// For `private_key_jwt`: a JWK Set file with the client's public keys.
    #[arg(long)]
    jwks_file: Option<std::path::PathBuf>,
    /// Where to deliver OpenID Connect back-channel logout tokens.
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// The tenant the client belongs to; it signs in that tenant's accounts only.
    #[arg(long, default_value = palisade_store::DEFAULT_TENANT)]
    tenant: String,
    /// For a resource server: the resource it serves (one of `oauth.resources`); it may
    /// introspect tokens for that audience only.
    #[arg(long)]
    resource: Option<String>,
    /// For `tls_client_auth`: the SPIFFE ID the client's X.509-SVID names.
    #[arg(long)]
    tls_client_auth_san_uri: Option<String>,
    /// For `self_signed_tls_client_auth`: the client's certificate (PEM).
    #[arg(long)]
    tls_client_certificate_file: Option<std::path::PathBuf>,
}

pub(crate) async fn run(config: Config, command: ClientsCommand) -> Result<()> {
    let tool = crate::node::Tool::open(&config).await?;
    let (db, auditor) = (&tool.db, &tool.auditor);
    match command {
        ClientsCommand::Create(args) => {
            let CreateArgs {
                name,
                auth_method,
                grants,
                scopes,
                redirect_uris,
                jwks_file,
                backchannel_logout_uri,
                tenant,
                resource,
                tls_client_auth_san_uri,
                tls_client_certificate_file,
            } = *args;
            if !palisade_identity::tenants::exists(db, &tenant).await? {
                bail!("no tenant {tenant}");
            }
            let Some(auth_method) = AuthMethod::parse(&auth_method) else {
                bail!(
                    "--auth-method must be client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth or none"
                );
            };
            let jwks = jwks_file
                .map(|path| -> Result<Vec<palisade_jose::Jwk>> {
                    #[derive(serde::Deserialize)]
                    struct Set {
                        keys: Vec<palisade_jose::Jwk>,
                    }
                    let text = std::fs::read_to_string(&path)?;
                    let set: Set = serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("{}: not a JWK Set: {e}", path.display()))?;
                    Ok(set.keys)
                })
                .transpose()?
                .unwrap_or_default();
            let thumbprint = tls_client_certificate_file
                .map(|path| -> Result<String> {
                    use rustls_pki_types::pem::PemObject;
                    let der =
                        rustls_pki_types::CertificateDer::from_pem_file(&path).map_err(|e| {
                            anyhow::anyhow!("{}: not a PEM certificate: {e}", path.display())
                        })?;
                    Ok(data_encoding::BASE64URL_NOPAD.encode(&palisade_crypto::sha256(&der)))
                })
                .transpose()?;
            if tls_client_auth_san_uri.is_some() && thumbprint.is_some() {
                bail!("give --tls-client-auth-san-uri or --tls-client-certificate-file, not both");
            }
            let new = NewClient {
                tls_client_certificate: tls_client_auth_san_uri.or(thumbprint),
                tenant_id: tenant,
                name,
                auth_method,
                redirect_uris,
                grant_types: grants,
                scopes,
                jwks,
                backchannel_logout_uri,
                registered_by: Registrar::Admin,
                resource,
            };
            // The issuer is not known to a tool, but the resources are configured.
            let resources = crate::node::resources(&config, "https://issuer.invalid");
            let policy = clients::Policy {
                api_scopes: &config.oauth.scopes,
                allowed_hosts: &[],
                resources: &resources,
            };
            if let Err(problem) = new.check(&policy) {
                bail!("{problem}");
            }
            let (client, secret) = clients::create(db, new).await?;
            auditor
                .record(
                    SecurityEvent::new(
                        Action::ClientRegistered,
                        Outcome::Success,
                        &client.tenant_id,
                    )
                    .client(client.client_id.clone())
                    .detail("by", "cli"),
                )
                .await?;
            let mut out = serde_json::to_value(&client)?;
            out["client_secret"] = secret.into();
            super::print(&out)?;
        }
        ClientsCommand::List => {
            super::print(&clients::list(db).await?)?;
        }
        ClientsCommand::Delete { client_id } => {
            let cache = palisade_oauth::clients::ClientCache::new(tool.cluster.bus.clone());
            let revocations =
                palisade_principal::Revocations::new(db.clone(), tool.cluster.bus.clone());
            let Some(tenant) = clients::delete(db, &cache, &revocations, &client_id).await? else {
                bail!("no client {client_id}");
            };
            auditor
                .record(
                    SecurityEvent::new(Action::ClientDeleted, Outcome::Success, &tenant)
                        .client(client_id.clone())
                        .detail("by", "cli"),
                )
                .await?;
            super::print(&serde_json::json!({ "deleted": client_id }))?;
        }
    }
    tool.close().await;
    Ok(())
}
