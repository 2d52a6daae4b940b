//! `palisade admin`: account administration from the command line. Passwords are read from
//! standard input, never from arguments (which other users can see in the process list).

use crate::config::Config;
use crate::node::Tool;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use palisade_audit::{Action, Outcome, SecurityEvent};
use palisade_crypto::Secret;
use palisade_identity::tenants;
use palisade_identity::users::{self, Email};
use serde_json::json;

/// The variants become the subcommands `create-tenant`, `create-user`, `lock-user`,
/// `unlock-user`, `set-role`, `erase-audit-trail`.
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a tenant (an organisation): its accounts sign in naming it, and see nothing of
    /// other tenants.
    CreateTenant {
        /// 2 to 40 of a-z, 0-9 and -, starting with a letter.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
    /// Create an account; the password is read from standard input.
    CreateUser {
        #[command(flatten)]
        who: Who,
    },
    /// Lock an account: it cannot sign in and its sessions stop working.
    LockUser {
        #[command(flatten)]
        who: Who,
    },
    /// Unlock a locked account.
    UnlockUser {
        #[command(flatten)]
        who: Who,
    },
    /// Give an account a role: member, moderator, tenant_admin or platform_admin. It applies
    /// from the account's next request.
    SetRole {
        #[command(flatten)]
        who: Who,
        #[arg(long)]
        role: String,
    },
    /// Erase an account from the audit trail (AUD-6): its keys are destroyed, so the details
    /// sealed in its entries can never be read again, and the searchable rows forget it; the
    /// entries stay, and the log still verifies.
    EraseAuditTrail {
        #[command(flatten)]
        who: Who,
    },
}

/// An account: its address within its tenant (the same address may exist in several).
#[derive(clap::Args)]
pub(crate) struct Who {
    #[arg(long)]
    email: String,
    /// The account's tenant; the default tenant when not given.
    #[arg(long, default_value = palisade_store::DEFAULT_TENANT)]
    tenant: String,
}

pub(crate) async fn run(config: Config, command: AdminCommand) -> Result<()> {
    let tool = crate::node::Tool::open(&config).await?;
    let (db, auditor) = (&tool.db, &tool.auditor);
    match command {
        AdminCommand::CreateTenant { id, name } => {
            let id = tenants::parse_id(&id)
                .context("a tenant id is 2 to 40 of a-z, 0-9 and -, starting with a letter")?;
            if !tenants::create(db, id, &name).await? {
                bail!("tenant {id} already exists");
            }
            auditor
                .record(
                    SecurityEvent::new(Action::TenantCreated, Outcome::Success, id)
                        .detail("via", "admin_cli"),
                )
                .await?;
            super::print(&json!({ "tenant_id": id, "name": name }))?;
        }
        AdminCommand::CreateUser {
            who: Who { email, tenant },
        } => {
            if !tenants::exists(db, &tenant).await? {
                bail!("no tenant {tenant}");
            }
            let email = Email::parse(&email).context("not a valid email address")?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if let Err(message) = palisade_identity::check_password_rules(
                &config.identity,
                &password,
                &email.normalized,
            ) {
                bail!("password refused: {message}");
            }
            let hasher = palisade_identity::password::PasswordHasher::new(
                &config.identity,
                Default::default(),
            )
            .map_err(anyhow::Error::msg)?;
            let hash = hasher
                .hash(Secret::new(password))
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let id = match users::create(db, &tenant, &email, &hash).await {
                Ok(id) => id,
                Err(e) if e.is_unique_violation() => {
                    bail!("an account with this address already exists")
                }
                Err(e) => return Err(e.into()),
            };
            auditor
                .record(
                    SecurityEvent::new(Action::SignUp, Outcome::Success, &tenant)
                        .actor(id.clone())
                        .detail("via", "admin_cli"),
                )
                .await?;
            super::print(&json!({ "user_id": id, "tenant_id": tenant }))?;
        }
        AdminCommand::LockUser { who } => set_locked(&tool, &who, true).await?,
        AdminCommand::UnlockUser { who } => set_locked(&tool, &who, false).await?,
        AdminCommand::SetRole { who, role } => set_role(&tool, &who, &role).await?,
        AdminCommand::EraseAuditTrail { who } => {
            let user = account(&tool, &who).await?;
            let destroyed = auditor.erase_subject(&user.id).await?;
            // Recorded without naming the account: naming it would undo the erasure.
            auditor
                .record(
                    SecurityEvent::new(Action::SubjectErased, Outcome::Success, &user.tenant_id)
                        .detail("keys_destroyed", destroyed)
                        .detail("via", "admin_cli"),
                )
                .await?;
            super::print(&json!({ "user_id": user.id, "keys_destroyed": destroyed }))?;
        }
    }
    tool.close().await;
    Ok(())
}

/// The account `who` names.
async fn account(tool: &Tool, who: &Who) -> Result<users::User> {
    let email = Email::parse(&who.email).context("not a valid email address")?;
    users::find_by_email(&tool.db, &who.tenant, &email.normalized)
        .await?
        .with_context(|| format!("no account with this address in tenant {}", who.tenant))
}

async fn set_role(tool: &Tool, who: &Who, role: &str) -> Result<()> {
    let Some(role) = palisade_principal::Role::parse(role) else {
        bail!("--role must be member, moderator, tenant_admin or platform_admin");
    };
    let user = account(tool, who).await?;
    users::set_role(&tool.db, &user.id, role.as_str()).await?;
    // The account's next request, on any node, acts with the new role.
    tool.revocations().account_changed(&user.id).await;
    tool.auditor
        .record(
            SecurityEvent::new(Action::RoleChanged, Outcome::Success, &user.tenant_id)
                .target(user.id.clone())
                .detail("from", user.role.as_str())
                .detail("to", role.as_str())
                .detail("via", "admin_cli"),
        )
        .await?;
    super::print(&json!({ "user_id": user.id, "role": role.as_str() }))
}

async fn set_locked(tool: &Tool, who: &Who, locked: bool) -> Result<()> {
    let user = account(tool, who).await?;
    users::set_locked(&tool.db, &user.id, locked).await?;
    tool.revocations().account_changed(&user.id).await;
    if locked {
        // Ended rather than merely refused: the applications signed in through them are told.
        palisade_identity::sessions::revoke_all(&tool.db, &user.id).await?;
    }
    let action = if locked {
        Action::AccountLocked
    } else {
        Action::AccountUnlocked
    };
    tool.auditor
        .record(
            SecurityEvent::new(action, Outcome::Success, &user.tenant_id)
                .target(user.id.clone())
                .detail("via", "admin_cli"),
        )
        .await?;
    super::print(&json!({ "user_id": user.id, "locked": locked }))
}
