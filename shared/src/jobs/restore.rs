//! Restore: load a pg_dump archive (ferry's or pg_dump's) into a database or a Neon branch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BranchAction, BranchInput, Context, JobError};
use crate::{
    archive::Section,
    neon::NeonClient,
    restore::{self, Options, RestoreError},
    store::{ObjectUrl, Store},
};

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestoreInput {
    /// The archive: a custom-format object, or a directory archive's prefix (ending in `/`)
    /// or its `toc.dat` (`s3://...` or `file:///...`). With `latest` or `asOf`: a prefix
    /// holding snapshots, of which the newest complete one (with its manifest) is restored.
    pub from: String,
    /// Restore the newest complete snapshot under the prefix `from`.
    #[serde(default)]
    pub latest: bool,
    /// Restore the newest complete snapshot under the prefix `from` taken at or before this
    /// time (RFC 3339).
    #[serde(default)]
    pub as_of: Option<String>,
    /// A PostgreSQL URL, Secrets Manager or `neon://` reference of an empty database; or give
    /// `neonProject` and `branch`.
    #[serde(default)]
    pub target: Option<String>,
    /// Restore into a branch of this Neon project (created when it does not exist).
    #[serde(default)]
    pub neon_project: Option<String>,
    /// The branch's name (get-or-create by exact name).
    #[serde(default)]
    pub branch: Option<String>,
    /// The parent of a branch that is created (the project's default branch otherwise).
    #[serde(default)]
    pub parent: Option<String>,
    /// When a branch is created, it expires after this long (`1d`, `12h`, ...).
    #[serde(default)]
    pub expires_in: Option<String>,
    /// Restore into this database of the branch, created empty when missing (a new branch
    /// holds a copy of its parent's databases, so a restore usually wants a fresh one).
    #[serde(default)]
    pub database: Option<String>,
    /// Connections loading tables and building indexes at once (default 2).
    #[serde(default)]
    pub jobs: Option<u32>,
    /// Do not give objects their archived owners (default: on for Neon targets).
    #[serde(default)]
    pub no_owner: Option<bool>,
    /// Do not restore grants (default: on for Neon targets).
    #[serde(default)]
    pub no_privileges: Option<bool>,
    /// Only these sections: `pre-data`, `data`, `post-data`.
    #[serde(default)]
    pub sections: Vec<String>,
    /// Only objects in these schemas (names as written, `*` and `?` wildcards).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Only these tables, views, sequences and their data (`table` or `schema.table`, names
    /// as written, `*` and `?` wildcards), as pg_restore's `-t`.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Only the entries of this list (`list` output, edited: an `s3://` or `file://` URL).
    #[serde(default)]
    pub use_list: Option<String>,
    /// Leave out objects in these schemas (names as written, `*` and `?` wildcards).
    #[serde(default)]
    pub exclude_schemas: Vec<String>,
    /// Leave out these tables, views, sequences and their data.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Drop the archive's objects (IF EXISTS) first; the target need not be empty then.
    #[serde(default)]
    pub clean: bool,
    /// All or nothing: one transaction on one connection (not with jobs > 1; not resumable).
    #[serde(default)]
    pub single_transaction: bool,
    /// Print the archive's table of contents (as `pg_restore -l`) and restore nothing.
    #[serde(default)]
    pub list: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutput {
    /// Where it was restored: the `neon://` reference for a Neon branch (no password), else
    /// the target as given, with any password removed.
    pub target: String,
    /// The Neon branch id, when restoring into a branch.
    pub branch_id: Option<String>,
    /// Whether this restore created the branch.
    pub branch_created: bool,
    /// Items of the archive restored (statements and tables).
    pub items: usize,
    /// Of those, done by an earlier run that was interrupted (not repeated).
    pub already_done: usize,
    pub tables: usize,
    pub rows: u64,
    /// With `list`: the table of contents, nothing restored.
    #[serde(default)]
    pub listing: Option<String>,
    /// With `latest` or `asOf`: the manifest of the snapshot that was chosen.
    #[serde(default)]
    pub snapshot: Option<String>,
}

impl From<RestoreError> for JobError {
    fn from(e: RestoreError) -> JobError {
        match e {
            RestoreError::Postgres(e) => JobError::Postgres(e),
            RestoreError::Store(e) => JobError::Store(e),
            RestoreError::Archive(crate::archive::ArchiveError::NotBuilt(what)) => {
                JobError::NotBuilt(what.to_string())
            }
            RestoreError::Archive(e) => JobError::Archive(e),
            e @ RestoreError::NotEmpty(_) => JobError::TargetNotEmpty(e.to_string()),
            e => JobError::RestoreFailed(e.to_string()),
        }
    }
}

/// The archive to restore: `from` itself, or with `latest`/`asOf` the archive of the snapshot
/// chosen under the prefix `from` (and that snapshot's manifest).
async fn source_archive(
    input: &RestoreInput,
    ctx: &Context,
) -> Result<(ObjectUrl, Option<String>), JobError> {
    let from = ObjectUrl::parse(&input.from)?;
    let as_of = match &input.as_of {
        Some(text) => Some(humantime::parse_rfc3339_weak(text).map_err(|e| {
            JobError::BadInput(format!("asOf {text:?} is not an RFC 3339 time: {e}"))
        })?),
        None => None,
    };
    if !input.latest && as_of.is_none() {
        return Ok((from, None));
    }
    if input.latest && as_of.is_some() {
        return Err(JobError::BadInput("give latest or asOf, not both".into()));
    }
    let store = Store::for_url(&from, &ctx.store).await?;
    let found = crate::catalog::catalog(&store, &from).await?;
    let chosen = found.choose(as_of)?;
    tracing::info!(snapshot = %chosen.location, taken = %chosen.created_at, "chose a snapshot");
    Ok((
        ObjectUrl::parse(&chosen.archive)?,
        Some(chosen.manifest.clone()),
    ))
}

fn section(name: &str) -> Result<Section, JobError> {
    match name {
        "pre-data" => Ok(Section::PreData),
        "data" => Ok(Section::Data),
        "post-data" => Ok(Section::PostData),
        other => Err(JobError::BadInput(format!(
            "unknown section {other:?}: use pre-data, data or post-data"
        ))),
    }
}

pub async fn restore(input: RestoreInput, ctx: Context) -> Result<RestoreOutput, JobError> {
    let (from, chosen) = source_archive(&input, &ctx).await?;
    let sections = input
        .sections
        .iter()
        .map(|s| section(s))
        .collect::<Result<Vec<_>, _>>()?;
    let store = Store::for_url(&from, &ctx.store).await?;
    if input.list {
        return Ok(RestoreOutput {
            target: String::new(),
            branch_id: None,
            branch_created: false,
            items: 0,
            already_done: 0,
            tables: 0,
            rows: 0,
            listing: Some(restore::listing(&store, &from).await?),
            snapshot: chosen,
        });
    }
    let use_list = match &input.use_list {
        None => None,
        Some(url) => {
            let url = ObjectUrl::parse(url)?;
            let text = Store::for_url(&url, &ctx.store)
                .await?
                .get_bytes(&url.key)
                .await?;
            let text = String::from_utf8_lossy(&text);
            Some(
                restore::parse_use_list(&text)
                    .map_err(|e| JobError::BadInput(format!("use-list {url}: {e}")))?,
            )
        }
    };
    if input.single_transaction && input.jobs.is_some_and(|j| j > 1) {
        return Err(JobError::BadInput(
            "singleTransaction runs on one connection: it cannot be combined with jobs > 1".into(),
        ));
    }
    let neon = match (&input.target, &input.neon_project, &input.branch) {
        (Some(_), None, None) => false,
        (None, Some(_), Some(_)) => true,
        _ => {
            return Err(JobError::BadInput(
                "give a target database, or a Neon project and branch (not both)".into(),
            ));
        }
    };
    let (reference, branch_id, created) = if neon {
        let project = input.neon_project.clone().unwrap_or_default();
        let made = super::branch(
            BranchInput {
                action: BranchAction::Create,
                project: project.clone(),
                branch: input.branch.clone(),
                parent: input.parent.clone(),
                expires_in: input.expires_in.clone(),
                at: None,
                at_lsn: None,
            },
            ctx.clone(),
        )
        .await?;
        let summary = made
            .branch
            .ok_or_else(|| JobError::BadInput("the Neon API returned no branch".into()))?;
        let role = summary.role.clone().ok_or_else(|| {
            JobError::BadInput(format!("branch {} has no role to restore as", summary.name))
        })?;
        let database = match &input.database {
            Some(name) => {
                let client = NeonClient::from_env().await?;
                client
                    .create_database(&project, &summary.branch_id, name, &role)
                    .await?;
                name.clone()
            }
            None => summary.database.clone().ok_or_else(|| {
                JobError::BadInput(format!("branch {} has no database", summary.name))
            })?,
        };
        (
            super::neon_reference(&project, &summary.branch_id, &database, &role),
            Some(summary.branch_id),
            made.created,
        )
    } else {
        (input.target.clone().unwrap_or_default(), None, false)
    };
    let config = super::database(&reference).await?;
    let options = Options {
        jobs: if input.single_transaction {
            1
        } else {
            input.jobs.unwrap_or(2).clamp(1, 64) as usize
        },
        no_owner: input.no_owner.unwrap_or(neon),
        no_privileges: input.no_privileges.unwrap_or(neon),
        sections,
        schemas: input.schemas.clone(),
        tables: input.tables.clone(),
        use_list,
        clean: input.clean,
        exclude_schemas: input.exclude_schemas.clone(),
        exclude_tables: input.exclude_tables.clone(),
        single_transaction: input.single_transaction,
    };
    let outcome = restore::run(&store, &from, &config, &options, &ctx.progress).await?;
    Ok(RestoreOutput {
        target: if neon { reference } else { config.target() },
        branch_id,
        branch_created: created,
        items: outcome.items,
        already_done: outcome.already_done,
        tables: outcome.tables,
        rows: outcome.rows,
        listing: None,
        snapshot: chosen,
    })
}
