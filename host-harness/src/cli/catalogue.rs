//! `scim-host catalogue …`: the roles, teams and learning paths the
//! reference LMS offers, which mapping rules may grant.

use anyhow::{Result, bail};
use clap::Subcommand;

use scim_host::bindings::lms::scim::lms::GrantKind;
use scim_host::{db, lms};

use crate::{DbArg, open_db};

#[derive(Subcommand)]
pub enum CatalogueCommand {
    /// Add a role, team or learning path (give exactly one).
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        learning_path: Option<String>,
        #[command(flatten)]
        db: DbArg,
    },
    /// List the catalogue.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
}

pub fn run(cmd: CatalogueCommand) -> Result<()> {
    match cmd {
        CatalogueCommand::Add {
            tenant,
            role,
            team,
            learning_path,
            db,
        } => {
            let (kind, name) = match (role, team, learning_path) {
                (Some(n), None, None) => (GrantKind::Role, n),
                (None, Some(n), None) => (GrantKind::Team, n),
                (None, None, Some(n)) => (GrantKind::LearningPath, n),
                _ => bail!("give exactly one of --role, --team, --learning-path"),
            };
            let pool = open_db(&db)?;
            let conn = pool.get()?;
            let id = db::tenant_id(&conn, &tenant)?;
            let added = lms::catalogue::add(&conn, id, kind, &name).map_err(anyhow::Error::msg)?;
            eprintln!(
                "{} {} '{}'",
                if added { "Added" } else { "Already present:" },
                lms::kind_name(kind),
                name.trim()
            );
        }
        CatalogueCommand::List { tenant, json, db } => {
            let pool = open_db(&db)?;
            let conn = pool.get()?;
            let id = db::tenant_id(&conn, &tenant)?;
            let list = lms::catalogue::list(&conn, id)?;
            if json {
                println!("{list}");
            } else {
                for (key, label) in [
                    ("roles", "role"),
                    ("teams", "team"),
                    ("learningPaths", "learning path"),
                ] {
                    for n in list[key].as_array().into_iter().flatten() {
                        println!("{label}\t{}", n.as_str().unwrap_or_default());
                    }
                }
            }
        }
    }
    Ok(())
}
