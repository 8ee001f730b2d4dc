//! `crowd console users add|list|delete`: the web console's users, written straight to the
//! store (as `crowd machines add`), with a role: `admin` may change things, `viewer` only looks.
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Format, output};
use crate::store::Location;

/// `crowd console` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// The console's users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

/// `crowd console users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user, or set an existing user's password and role (its sessions end).
    Add {
        /// Login name.
        name: String,
        /// `admin` (may change things) or `viewer` (only looks).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// The password (random if absent, and printed); `-` reads it from standard input.
        #[arg(long)]
        password: Option<String>,
    },
    /// List the users.
    List,
    /// Delete a user (its sessions end).
    Delete {
        /// Login name.
        name: String,
    },
}

/// Runs a `crowd console` command on the store at `loc`.
///
/// # Errors
/// Bad names, roles or passwords; store errors.
pub fn dispatch(loc: &Location, cmd: &ConsoleCommand, fmt: Format) -> Result<()> {
    let ConsoleCommand::Users { command } = cmd;
    let mut s = crate::rules::open_store(loc)?;
    let now = crate::lapi::decisions::now();
    match command {
        UsersCommand::Add { name, role, password } => {
            if name.is_empty() || name.len() > 100 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                bail!("user name `{name}`: 1 to 100 characters, no spaces");
            }
            if !crate::console::ROLES.contains(&role.as_str()) {
                bail!("--role `{role}`: expected {}", crate::console::ROLES.join(" or "));
            }
            let (pw, shown) = match password.as_deref() {
                Some("-") => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    (line.trim_end_matches(['\r', '\n']).to_owned(), false)
                }
                Some(p) => (p.to_owned(), false),
                None => (crate::lapi::auth::random_token(), true),
            };
            if pw.chars().count() < 12 {
                bail!("the password is too short: at least 12 characters");
            }
            let hash = crate::console::hash_password(&pw).map_err(|e| anyhow::anyhow!("{e}"))?;
            s.console_user_put(name, &hash, role, now)?;
            match fmt {
                Format::Json => output::json(&json!({"name": name, "role": role, "password": shown.then_some(&pw)})),
                Format::Table if shown => println!("console user `{name}` ({role}) set; password: {pw}"),
                Format::Table => println!("console user `{name}` ({role}) set"),
            }
        }
        UsersCommand::List => {
            let users = s.console_users()?;
            match fmt {
                Format::Json => output::json(&users),
                Format::Table => output::table(
                    &["NAME", "ROLE", "CREATED"],
                    &users
                        .iter()
                        .map(|u| vec![u.name.clone(), u.role.clone(), crate::clock::rfc3339(u.created_at)])
                        .collect::<Vec<_>>(),
                ),
            }
        }
        UsersCommand::Delete { name } => {
            if !s.console_user_delete(name)? {
                bail!("no console user `{name}`");
            }
            match fmt {
                Format::Json => output::json(&json!({"name": name, "deleted": true})),
                Format::Table => println!("console user `{name}` deleted"),
            }
        }
    }
    Ok(())
}
