//! Branch: create (get-or-create), get, list, delete and reset Neon branches.

use serde::{Deserialize, Serialize};

use super::{Context, JobError};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BranchAction {
    Create,
    Get,
    List,
    Delete,
    Reset,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BranchInput {
    pub action: BranchAction,
    pub project: String,
    /// Branch name or id (not used by `list`).
    #[serde(default)]
    pub branch: Option<String>,
    /// Parent branch name or id, for `create`.
    #[serde(default)]
    pub parent: Option<String>,
    /// Expiry for `create`, such as `7d` or `12h`.
    #[serde(default)]
    pub expires_in: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchOutput {
    pub branch_id: String,
    pub name: String,
    pub created: bool,
}

pub async fn branch(input: BranchInput, _ctx: Context) -> Result<BranchOutput, JobError> {
    if input.action != BranchAction::List && input.branch.is_none() {
        return Err(JobError::BadInput("a branch name or id is required".into()));
    }
    Err(JobError::NotImplemented {
        job: "branch",
        issue: 3,
    })
}
