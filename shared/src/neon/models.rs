//! The parts of Neon's API v2 responses ferry reads.
//!
//! Lenient on purpose: fields ferry does not need are ignored, optional ones default, and enums
//! keep an `Unknown` variant, so that a field Neon adds tomorrow does not break a backup tonight.
//! Passwords and connection URIs arrive as [`Secret`]s and never print.

use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub pg_version: Option<u32>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub history_retention_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Branch {
    pub id: String,
    pub project_id: String,
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub parent_lsn: Option<String>,
    #[serde(default)]
    pub parent_timestamp: Option<String>,
    #[serde(default)]
    pub current_state: Option<String>,
    #[serde(default)]
    pub pending_state: Option<String>,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub init_source: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub project_id: String,
    pub branch_id: String,
    pub host: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub current_state: Option<String>,
    #[serde(default)]
    pub pooler_enabled: bool,
}

/// Where an operation is. Done means `Finished` or `Skipped`; `Failed`, `Error` and `Cancelled`
/// mean the step did not happen.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Scheduling,
    Running,
    Finished,
    Failed,
    Error,
    Cancelling,
    Cancelled,
    Skipped,
    #[serde(other)]
    Unknown,
}

impl OperationStatus {
    pub fn is_done(self) -> bool {
        matches!(self, OperationStatus::Finished | OperationStatus::Skipped)
    }

    pub fn is_failed(self) -> bool {
        matches!(
            self,
            OperationStatus::Failed | OperationStatus::Error | OperationStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Scheduling => "scheduling",
            OperationStatus::Running => "running",
            OperationStatus::Finished => "finished",
            OperationStatus::Failed => "failed",
            OperationStatus::Error => "error",
            OperationStatus::Cancelling => "cancelling",
            OperationStatus::Cancelled => "cancelled",
            OperationStatus::Skipped => "skipped",
            OperationStatus::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Operation {
    pub id: String,
    pub project_id: String,
    #[serde(default)]
    pub branch_id: Option<String>,
    #[serde(default)]
    pub endpoint_id: Option<String>,
    pub action: String,
    pub status: OperationStatus,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub failures_count: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Database {
    pub id: i64,
    pub branch_id: String,
    pub name: String,
    pub owner_name: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Role {
    pub branch_id: String,
    pub name: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub protected: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ConnectionParameters {
    pub database: String,
    pub role: String,
    pub host: String,
    pub pooler_host: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ConnectionDetails {
    pub connection_uri: Secret,
    pub connection_parameters: ConnectionParameters,
}

/// Branch list pagination: `next` is present even on the last page.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct BranchPagination {
    #[serde(default)]
    pub next: Option<String>,
}

/// Operation and project list pagination.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct CursorPagination {
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BranchesResponse {
    pub branches: Vec<Branch>,
    #[serde(default)]
    pub pagination: Option<BranchPagination>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BranchResponse {
    pub branch: Branch,
}

/// What a branch write returns: the branch and the operations to wait for.
#[derive(Debug, Clone, Deserialize)]
pub struct BranchOperations {
    pub branch: Branch,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// What creating a branch returns. `connection_uris` is left out by Neon when the parent has
/// several databases or roles: ask `/connection_uri` instead of relying on it.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedBranch {
    pub branch: Branch,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default)]
    pub connection_uris: Option<Vec<ConnectionDetails>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OperationResponse {
    pub operation: Operation,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OperationsResponse {
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub pagination: Option<CursorPagination>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EndpointsResponse {
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EndpointResponse {
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabasesResponse {
    pub databases: Vec<Database>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseOperations {
    pub database: Database,
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RolesResponse {
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RoleResponse {
    pub role: Role,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RolePassword {
    pub password: Secret,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionUri {
    pub uri: Secret,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectsResponse {
    pub projects: Vec<Project>,
    #[serde(default)]
    pub pagination: Option<CursorPagination>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectResponse {
    pub project: Project,
}

/// What creating a project returns (its default branch, endpoint, role and database).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedProject {
    pub project: Project,
    #[serde(default)]
    pub branch: Option<Branch>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub operations: Vec<Operation>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub databases: Vec<Database>,
    #[serde(default)]
    pub connection_uris: Vec<ConnectionDetails>,
}

/// The body of an error response. `code` is often empty.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub request_id: Option<String>,
}
