//! Branch: create (get-or-create by exact name), get, list, delete and reset Neon branches.
//!
//! The output names the branch, its endpoint host, database and role, and a `connection`
//! reference (`neon://PROJECT/BRANCH/DATABASE?role=ROLE`) that other jobs resolve through the
//! Neon API when they connect. The password itself is never part of the output.

use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::neon::{CreateBranch, NeonClient, PointInTime, models::Branch, parse_expiry};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BranchAction {
    Create,
    Get,
    List,
    Delete,
    Reset,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BranchInput {
    pub action: BranchAction,
    /// The Neon project id.
    pub project: String,
    /// Branch name (create) or name or id (get, delete, reset); not used by `list`; `get`
    /// without it answers the project's default branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Parent branch name or id, for `create`; the project's default branch when omitted or
    /// empty.
    #[serde(default)]
    pub parent: Option<String>,
    /// Expiry for `create`, such as `7d` or `12h` (at most 30 days).
    #[serde(default)]
    pub expires_in: Option<String>,
    /// For `create`: branch from the parent as it was at this time (RFC 3339), within the
    /// project's history retention.
    #[serde(default)]
    pub at: Option<String>,
    /// For `create`: branch from the parent at this WAL position (such as `0/1F2A3B8`).
    #[serde(default)]
    pub at_lsn: Option<String>,
}

/// One branch, as workflows need it. Carries no secret.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BranchSummary {
    pub branch_id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub state: Option<String>,
    pub default: bool,
    pub expires_at: Option<String>,
    /// Host of the branch's read-write endpoint, when it has one.
    pub endpoint_host: Option<String>,
    /// The branch's main database and its owner role.
    pub database: Option<String>,
    pub role: Option<String>,
    /// Where ferry reads the password from when it connects:
    /// `neon://PROJECT/BRANCH_ID/DATABASE?role=ROLE`, resolved through the Neon API.
    pub connection: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BranchOutput {
    pub action: BranchAction,
    pub project: String,
    /// The branch acted on (create, get, reset, delete).
    pub branch: Option<BranchSummary>,
    /// Every branch of the project (list).
    #[serde(default)]
    pub branches: Vec<BranchSummary>,
    /// create: whether this call made the branch (false when it already existed).
    pub created: bool,
    /// delete: whether this call removed it (false when it was already gone).
    pub deleted: bool,
}

pub async fn branch(input: BranchInput, _ctx: Context) -> Result<BranchOutput, JobError> {
    if input.project.is_empty() {
        return Err(JobError::BadInput("a Neon project id is required".into()));
    }
    let named = || {
        input
            .branch
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| JobError::BadInput("a branch name or id is required".into()))
    };
    // Everything that can be checked without the API is checked before the first request.
    let expires_at = match (&input.expires_in, input.action) {
        (Some(text), BranchAction::Create) => Some(SystemTime::now() + parse_expiry(text)?),
        (Some(_), _) => {
            return Err(JobError::BadInput(
                "expiresIn applies to create only".into(),
            ));
        }
        (None, _) => None,
    };
    let point_in_time = match (&input.at, &input.at_lsn, input.action) {
        (None, None, _) => None,
        (Some(_), Some(_), _) => {
            return Err(JobError::BadInput("give at or atLsn, not both".into()));
        }
        (_, _, action) if action != BranchAction::Create => {
            return Err(JobError::BadInput(
                "at and atLsn apply to create only".into(),
            ));
        }
        (Some(at), None, _) => {
            humantime::parse_rfc3339_weak(at).map_err(|e| {
                JobError::BadInput(format!("at {at:?} is not an RFC 3339 time: {e}"))
            })?;
            Some(PointInTime::Timestamp(at.clone()))
        }
        (None, Some(lsn), _) => {
            let valid = lsn.split_once('/').is_some_and(|(hi, lo)| {
                !hi.is_empty()
                    && !lo.is_empty()
                    && hi.chars().chain(lo.chars()).all(|c| c.is_ascii_hexdigit())
            });
            if !valid {
                return Err(JobError::BadInput(format!(
                    "atLsn {lsn:?} is not a WAL position such as 0/1F2A3B8"
                )));
            }
            Some(PointInTime::Lsn(lsn.clone()))
        }
    };
    // `get` without a branch: the project's default branch (a workflow's "the branch" input
    // may be empty).
    let default_branch =
        input.action == BranchAction::Get && input.branch.as_deref().is_none_or(str::is_empty);
    let target = if input.action == BranchAction::List || default_branch {
        None
    } else {
        Some(named()?)
    };
    let client = NeonClient::from_env().await?;
    let project = input.project.as_str();
    let mut output = BranchOutput {
        action: input.action,
        project: project.to_string(),
        branch: None,
        branches: Vec::new(),
        created: false,
        deleted: false,
    };
    match input.action {
        BranchAction::Create => {
            let info = client
                .get_or_create_branch(
                    project,
                    &CreateBranch {
                        name: target.unwrap_or_default(),
                        parent: input.parent.clone().filter(|p| !p.is_empty()),
                        expires_at,
                        point_in_time,
                        with_endpoint: true,
                        ..CreateBranch::default()
                    },
                )
                .await?;
            output.created = info.created;
            output.branch = Some(summarize(&client, project, &info.branch, true).await?);
        }
        BranchAction::Get => {
            let b = match target {
                Some(name) => client.resolve_branch(project, &name).await?,
                None => client
                    .list_branches(project)
                    .await?
                    .into_iter()
                    .find(|b| b.default)
                    .ok_or_else(|| {
                        JobError::BadInput(format!("project {project} has no default branch"))
                    })?,
            };
            output.branch = Some(summarize(&client, project, &b, true).await?);
        }
        BranchAction::Reset => {
            let b = client
                .resolve_branch(project, &target.unwrap_or_default())
                .await?;
            let b = client.reset_branch(project, &b.id).await?;
            output.branch = Some(summarize(&client, project, &b, true).await?);
        }
        BranchAction::Delete => {
            let name = target.unwrap_or_default();
            match client.resolve_branch(project, &name).await {
                Ok(b) => {
                    output.deleted = client.delete_branch(project, &b.id).await?;
                    output.branch = Some(summarize(&client, project, &b, false).await?);
                }
                // Already gone: deleting twice is fine.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        BranchAction::List => {
            for b in client.list_branches(project).await? {
                output
                    .branches
                    .push(summarize(&client, project, &b, false).await?);
            }
        }
    }
    Ok(output)
}

/// Describes a branch; with `details`, also its endpoint, main database and role.
async fn summarize(
    client: &NeonClient,
    project: &str,
    b: &Branch,
    details: bool,
) -> Result<BranchSummary, JobError> {
    let mut summary = BranchSummary {
        branch_id: b.id.clone(),
        name: b.name.clone(),
        parent_id: b.parent_id.clone(),
        state: b.current_state.clone(),
        default: b.default,
        expires_at: b.expires_at.clone(),
        endpoint_host: None,
        database: None,
        role: None,
        connection: None,
    };
    if !details {
        return Ok(summary);
    }
    let endpoints = client.branch_endpoints(project, &b.id).await?;
    summary.endpoint_host = endpoints
        .iter()
        .find(|e| e.kind == "read_write")
        .or(endpoints.first())
        .map(|e| e.host.clone());
    let databases = client.list_databases(project, &b.id).await?;
    let main = databases
        .iter()
        .find(|d| d.name == "neondb")
        .or(databases.first());
    if let Some(db) = main {
        summary.database = Some(db.name.clone());
        summary.role = Some(db.owner_name.clone());
        summary.connection = Some(super::neon_reference(
            project,
            &b.id,
            &db.name,
            &db.owner_name,
        ));
    }
    Ok(summary)
}
