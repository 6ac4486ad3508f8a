//! The HTTP side of the Neon client: one request path with the retry policy, and the calls
//! built on it (operations, projects, branches, databases, roles, connection URIs).

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{MAX_EXPIRY, NeonConfig, NeonError, models::*};
use crate::secret::Secret;

/// Characters escaped in a path segment (database and role names can hold anything).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Whether a request can be sent again after a failure whose effect is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Reads, and writes that end in the same state when repeated.
    Safe,
    /// Writes that would do something twice: after a network error or a 5xx other than 503,
    /// the caller reads the state back instead.
    ReadBack,
}

/// A branch as the workflows see it: the branch, its endpoints, and whether this call made it.
#[derive(Debug, Clone)]
pub struct BranchInfo {
    pub branch: Branch,
    pub endpoints: Vec<Endpoint>,
    pub created: bool,
}

/// Where a new branch's data comes from in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointInTime {
    /// RFC 3339, such as `2026-11-25T12:00:00Z`.
    Timestamp(String),
    /// A WAL position such as `0/1F2A3B8`.
    Lsn(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitSource {
    #[default]
    ParentData,
    SchemaOnly,
}

/// A branch to create.
#[derive(Debug, Clone, Default)]
pub struct CreateBranch {
    pub name: String,
    /// Parent branch name or id; the project's default branch when `None`.
    pub parent: Option<String>,
    pub point_in_time: Option<PointInTime>,
    pub init_source: InitSource,
    pub expires_at: Option<SystemTime>,
    /// Give the branch a read-write compute endpoint (without one it cannot be connected to).
    pub with_endpoint: bool,
}

/// Changes to a branch; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateBranch {
    pub name: Option<String>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<SystemTime>>,
}

/// Parses an expiry such as `7d`, `12h` or `90m`: more than zero, at most 30 days (Neon's limit).
/// Checked before any request is sent.
pub fn parse_expiry(text: &str) -> Result<Duration, NeonError> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        NeonError::BadInput(format!(
            "expiry {text:?} is not a duration such as 7d or 12h: {e}"
        ))
    })?;
    check_expiry_duration(duration, text)?;
    Ok(duration)
}

fn check_expiry_duration(duration: Duration, text: &str) -> Result<(), NeonError> {
    if duration.is_zero() {
        return Err(NeonError::BadInput(format!(
            "expiry {text:?} must be in the future"
        )));
    }
    if duration > MAX_EXPIRY {
        return Err(NeonError::BadInput(format!(
            "expiry {text:?} is more than Neon's limit of 30 days"
        )));
    }
    Ok(())
}

fn check_expires_at(at: SystemTime) -> Result<String, NeonError> {
    let text = humantime::format_rfc3339_seconds(at).to_string();
    let ahead = at
        .duration_since(SystemTime::now())
        .map_err(|_| NeonError::BadInput(format!("expires_at {text} is in the past")))?;
    check_expiry_duration(ahead, &text)?;
    Ok(text)
}

/// How long a `Retry-After` header asks to wait: seconds, or an HTTP date (RFC 9110; parsed
/// by `httpdate`, which also takes the obsolete RFC 850 and asctime forms).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    retry_after_value(value)
}

fn retry_after_value(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    httpdate::parse_http_date(value.trim())
        .ok()
        .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// A client of the Neon API. Cheap to clone.
#[derive(Clone)]
pub struct NeonClient {
    http: reqwest::Client,
    config: Arc<NeonConfig>,
}

impl std::fmt::Debug for NeonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeonClient")
            .field("host", &self.config.host)
            .finish_non_exhaustive()
    }
}

impl NeonClient {
    pub fn new(config: NeonConfig) -> Result<NeonClient, NeonError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| NeonError::BadInput(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NeonError::BadInput(format!("HTTP client setup: {e}")))?;
        Ok(NeonClient {
            http,
            config: Arc::new(config),
        })
    }

    pub async fn from_env() -> Result<NeonClient, NeonError> {
        NeonClient::new(NeonConfig::from_env().await?)
    }

    pub fn config(&self) -> &NeonConfig {
        &self.config
    }

    /// Sends one API request with the retry policy and decodes the body (`None` for 204).
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<Option<T>, NeonError> {
        let url = format!("{}{path}", self.config.host);
        let name = method.as_str().to_string();
        let mut attempts = self.config.retry.start();
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.config.api_key.expose())
                .header(reqwest::header::ACCEPT, "application/json")
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    // reqwest's error text carries the URL (ids only), never headers.
                    let reason = e.without_url().to_string();
                    if replay == Replay::Safe
                        && let Some(delay) = attempts.next_delay(None)
                    {
                        tracing::info!(method = %name, path, error = %reason, retry_in_ms = delay.as_millis() as u64, "Neon API network error; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(NeonError::Network {
                        method: name,
                        path: path.to_string(),
                        reason,
                    });
                }
            };
            let status = response.status();
            tracing::debug!(method = %name, path, status = status.as_u16(), "Neon API");
            if status.is_success() {
                let bytes = response.bytes().await.map_err(|e| NeonError::Network {
                    method: name.clone(),
                    path: path.to_string(),
                    reason: format!("reading the response: {}", e.without_url()),
                })?;
                if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                    return Ok(None);
                }
                return serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| NeonError::Decode {
                        method: name,
                        path: path.to_string(),
                        reason: e.to_string(),
                    });
            }
            let hint = retry_after(&response);
            let error: ErrorBody = response.json().await.unwrap_or_default();
            let code = status.as_u16();
            // 423/429/503: the server refused before doing anything, so any request may repeat.
            let refused = matches!(code, 423 | 429 | 503);
            let transient = refused || (status.is_server_error() && replay == Replay::Safe);
            if transient && let Some(delay) = attempts.next_delay(hint) {
                tracing::info!(method = %name, path, status = code, retry_in_ms = delay.as_millis() as u64, message = %error.message, "Neon API busy; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            let path = path.to_string();
            return Err(match code {
                423 => NeonError::Locked {
                    method: name,
                    path,
                    attempts: attempts.count(),
                },
                429 | 500..=599 => NeonError::Unavailable {
                    method: name,
                    path,
                    status: code,
                    attempts: attempts.count(),
                    message: error.message,
                },
                404 => NeonError::NotFound {
                    what: format!("{path} ({})", error.message),
                },
                409 => NeonError::AlreadyExists {
                    what: format!("{path} ({})", error.message),
                },
                _ => NeonError::Api {
                    method: name,
                    path,
                    status: code,
                    message: error.message,
                },
            });
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, NeonError> {
        self.call(Method::GET, path, query, None, Replay::Safe)
            .await?
            .ok_or_else(|| NeonError::Decode {
                method: "GET".into(),
                path: path.to_string(),
                reason: "empty response".into(),
            })
    }

    fn expect<T>(value: Option<T>, method: &str, path: &str) -> Result<T, NeonError> {
        value.ok_or_else(|| NeonError::Decode {
            method: method.into(),
            path: path.to_string(),
            reason: "empty response".into(),
        })
    }

    // ---- operations ----

    /// Waits until every operation is finished or skipped. A failed, errored or cancelled one
    /// is an error naming it; so is running past `operation_timeout`.
    pub async fn wait_for_operations(
        &self,
        project: &str,
        operations: &[Operation],
    ) -> Result<(), NeonError> {
        let started = Instant::now();
        let mut pending: Vec<Operation> = Vec::new();
        for op in operations {
            check_operation(op)?;
            if !op.status.is_done() {
                pending.push(op.clone());
            }
        }
        let mut delay = self.config.poll_interval;
        while !pending.is_empty() {
            if started.elapsed() > self.config.operation_timeout {
                let names: Vec<String> = pending
                    .iter()
                    .map(|o| format!("{} ({})", o.id, o.action))
                    .collect();
                return Err(NeonError::TimedOut {
                    what: format!("Neon operations {}", names.join(", ")),
                    after: self.config.operation_timeout,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(Duration::from_secs(2));
            let mut still = Vec::new();
            for op in pending {
                let path = format!(
                    "/projects/{}/operations/{}",
                    segment(project),
                    segment(&op.id)
                );
                let current: OperationResponse = self.get(&path, &[]).await?;
                check_operation(&current.operation)?;
                if !current.operation.status.is_done() {
                    still.push(current.operation);
                }
            }
            pending = still;
        }
        Ok(())
    }

    pub async fn list_operations(&self, project: &str) -> Result<Vec<Operation>, NeonError> {
        let path = format!("/projects/{}/operations", segment(project));
        self.collect_pages(
            &path,
            Vec::new(),
            self.config.page_size,
            |page: OperationsResponse| (page.operations, page.pagination.and_then(|p| p.cursor)),
        )
        .await
    }

    // ---- projects ----

    pub async fn list_projects(&self) -> Result<Vec<Project>, NeonError> {
        // The projects endpoint takes at most 400 per page.
        let limit = self.config.page_size.min(400);
        self.collect_pages("/projects", Vec::new(), limit, |page: ProjectsResponse| {
            (page.projects, page.pagination.and_then(|p| p.cursor))
        })
        .await
    }

    pub async fn get_project(&self, project: &str) -> Result<Project, NeonError> {
        let r: ProjectResponse = self
            .get(&format!("/projects/{}", segment(project)), &[])
            .await?;
        Ok(r.project)
    }

    /// Creates a project and waits for it to be ready.
    pub async fn create_project(&self, name: &str) -> Result<CreatedProject, NeonError> {
        let body = json!({"project": {"name": name}});
        let created: CreatedProject = Self::expect(
            self.call(
                Method::POST,
                "/projects",
                &[],
                Some(&body),
                Replay::ReadBack,
            )
            .await?,
            "POST",
            "/projects",
        )?;
        self.wait_for_operations(&created.project.id, &created.operations)
            .await?;
        Ok(created)
    }

    // ---- branches ----

    /// Every branch of the project, reading every page.
    pub async fn list_branches(&self, project: &str) -> Result<Vec<Branch>, NeonError> {
        self.list_branches_matching(project, None).await
    }

    async fn list_branches_matching(
        &self,
        project: &str,
        search: Option<&str>,
    ) -> Result<Vec<Branch>, NeonError> {
        let path = format!("/projects/{}/branches", segment(project));
        let query = search
            .map(|s| ("search", s.to_string()))
            .into_iter()
            .collect();
        self.collect_pages(
            &path,
            query,
            self.config.page_size,
            |page: BranchesResponse| (page.branches, page.pagination.and_then(|p| p.next)),
        )
        .await
    }

    /// Reads every page of a list. Both pagination shapes (`next` for branches, `cursor` for
    /// operations and projects) come back as "the cursor of the next page"; real responses
    /// carry one even on the last page, so an empty or short page is the end.
    async fn collect_pages<P: DeserializeOwned, T>(
        &self,
        path: &str,
        mut query: Vec<(&'static str, String)>,
        limit: u32,
        split: impl Fn(P) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, NeonError> {
        query.push(("limit", limit.to_string()));
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page_query = query.clone();
            if let Some(c) = &cursor {
                page_query.push(("cursor", c.clone()));
            }
            let (items, next) = split(self.get(path, &page_query).await?);
            let n = items.len();
            all.extend(items);
            match next {
                Some(next) if n > 0 && n as u32 >= limit && cursor.as_ref() != Some(&next) => {
                    cursor = Some(next)
                }
                _ => return Ok(all),
            }
        }
    }

    /// The branch with exactly this name (the API's `search` matches parts of names and ids).
    pub async fn find_branch_by_name(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Option<Branch>, NeonError> {
        let mut found: Vec<Branch> = self
            .list_branches_matching(project, Some(name))
            .await?
            .into_iter()
            .filter(|b| b.name == name)
            .collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(NeonError::BadInput(format!(
                "{n} branches of project {project} are named {name:?}; give the branch id instead"
            ))),
        }
    }

    pub async fn get_branch(&self, project: &str, branch_id: &str) -> Result<Branch, NeonError> {
        let path = format!(
            "/projects/{}/branches/{}",
            segment(project),
            segment(branch_id)
        );
        let r: BranchResponse = self.get(&path, &[]).await?;
        Ok(r.branch)
    }

    /// A branch by id or exact name.
    pub async fn resolve_branch(
        &self,
        project: &str,
        name_or_id: &str,
    ) -> Result<Branch, NeonError> {
        if name_or_id.starts_with("br-") {
            match self.get_branch(project, name_or_id).await {
                Ok(b) => return Ok(b),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        self.find_branch_by_name(project, name_or_id)
            .await?
            .ok_or_else(|| NeonError::NotFound {
                what: format!("branch {name_or_id:?} in project {project}"),
            })
    }

    pub async fn branch_endpoints(
        &self,
        project: &str,
        branch_id: &str,
    ) -> Result<Vec<Endpoint>, NeonError> {
        let path = format!(
            "/projects/{}/branches/{}/endpoints",
            segment(project),
            segment(branch_id)
        );
        let r: EndpointsResponse = self.get(&path, &[]).await?;
        // Never hand back another branch's endpoint.
        Ok(r.endpoints
            .into_iter()
            .filter(|e| e.branch_id == branch_id)
            .collect())
    }

    /// Creates a branch and waits for its operations. Fails with `AlreadyExists` on a duplicate
    /// name; use [`NeonClient::get_or_create_branch`] for reruns.
    pub async fn create_branch(
        &self,
        project: &str,
        request: &CreateBranch,
    ) -> Result<BranchInfo, NeonError> {
        let body = self.create_body(project, request).await?;
        let created = self.post_branch(project, &body).await?;
        self.finish_create(project, request, created).await
    }

    async fn create_body(
        &self,
        project: &str,
        request: &CreateBranch,
    ) -> Result<(Value, Option<String>), NeonError> {
        if request.name.is_empty() || request.name.len() > 256 {
            return Err(NeonError::BadInput(
                "a branch name has 1 to 256 characters".into(),
            ));
        }
        let expires_at = request.expires_at.map(check_expires_at).transpose()?;
        let parent_id = match &request.parent {
            Some(parent) => Some(self.resolve_branch(project, parent).await?.id),
            None => None,
        };
        let mut branch = serde_json::Map::new();
        branch.insert("name".into(), json!(request.name));
        if let Some(id) = &parent_id {
            branch.insert("parent_id".into(), json!(id));
        }
        match &request.point_in_time {
            Some(PointInTime::Timestamp(t)) => {
                branch.insert("parent_timestamp".into(), json!(t));
            }
            Some(PointInTime::Lsn(l)) => {
                branch.insert("parent_lsn".into(), json!(l));
            }
            None => {}
        }
        if request.init_source == InitSource::SchemaOnly {
            branch.insert("init_source".into(), json!("schema-only"));
        }
        if let Some(at) = expires_at {
            branch.insert("expires_at".into(), json!(at));
        }
        let mut body = json!({ "branch": branch });
        if request.with_endpoint {
            body["endpoints"] = json!([{"type": "read_write"}]);
        }
        Ok((body, parent_id))
    }

    async fn post_branch(
        &self,
        project: &str,
        body: &(Value, Option<String>),
    ) -> Result<CreatedBranch, NeonError> {
        let path = format!("/projects/{}/branches", segment(project));
        Self::expect(
            self.call(Method::POST, &path, &[], Some(&body.0), Replay::ReadBack)
                .await?,
            "POST",
            &path,
        )
    }

    async fn finish_create(
        &self,
        project: &str,
        request: &CreateBranch,
        created: CreatedBranch,
    ) -> Result<BranchInfo, NeonError> {
        if created.branch.name != request.name {
            return Err(NeonError::Decode {
                method: "POST".into(),
                path: format!("/projects/{project}/branches"),
                reason: format!(
                    "asked for branch {:?}, got {:?}",
                    request.name, created.branch.name
                ),
            });
        }
        self.wait_for_operations(project, &created.operations)
            .await?;
        let endpoints = created
            .endpoints
            .into_iter()
            .filter(|e| e.branch_id == created.branch.id)
            .collect();
        Ok(BranchInfo {
            branch: self
                .get_branch_after_create(project, &created.branch.id)
                .await?,
            endpoints,
            created: true,
        })
    }

    /// A GET right after creation has been seen to answer 404 for a moment.
    async fn get_branch_after_create(
        &self,
        project: &str,
        branch_id: &str,
    ) -> Result<Branch, NeonError> {
        let mut attempts = self.config.retry.start();
        loop {
            match self.get_branch(project, branch_id).await {
                Err(e) if e.is_not_found() => match attempts.next_delay(None) {
                    Some(delay) if attempts.count() <= 5 => tokio::time::sleep(delay).await,
                    _ => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// Returns the branch named `request.name`, creating it when it does not exist. Reports
    /// whether this call created it. Never returns another branch: the name must match exactly
    /// and the branch cannot be the parent. Waits until the branch is ready either way.
    pub async fn get_or_create_branch(
        &self,
        project: &str,
        request: &CreateBranch,
    ) -> Result<BranchInfo, NeonError> {
        let body = self.create_body(project, request).await?;
        let parent_id = body.1.clone();
        let check = |branch: &Branch| -> Result<(), NeonError> {
            if branch.name != request.name || Some(&branch.id) == parent_id.as_ref() {
                return Err(NeonError::Decode {
                    method: "GET".into(),
                    path: format!("/projects/{project}/branches"),
                    reason: format!(
                        "branch {} is not the branch named {:?}",
                        branch.id, request.name
                    ),
                });
            }
            Ok(())
        };
        let mut attempts = self.config.retry.start();
        loop {
            if let Some(existing) = self.find_branch_by_name(project, &request.name).await? {
                check(&existing)?;
                return self.existing(project, existing, false).await;
            }
            match self.post_branch(project, &body).await {
                Ok(created) => return self.finish_create(project, request, created).await,
                Err(NeonError::AlreadyExists { .. }) => {
                    // Another run created it between our look and our create.
                    continue;
                }
                Err(e @ (NeonError::Network { .. } | NeonError::Unavailable { .. })) => {
                    // The create may or may not have happened: read back before anything else.
                    tracing::info!(error = %e, name = %request.name, "branch create outcome unknown; reading back");
                    if let Some(made) = self.find_branch_by_name(project, &request.name).await? {
                        check(&made)?;
                        return self.existing(project, made, true).await;
                    }
                    match attempts.next_delay(None) {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for a branch that exists to be ready, with its endpoints.
    async fn existing(
        &self,
        project: &str,
        branch: Branch,
        created: bool,
    ) -> Result<BranchInfo, NeonError> {
        let branch = self.wait_for_branch_ready(project, branch).await?;
        let endpoints = self.branch_endpoints(project, &branch.id).await?;
        Ok(BranchInfo {
            branch,
            endpoints,
            created,
        })
    }

    /// Polls a branch until its state is `ready` (a branch another run created may still be
    /// initialising).
    pub async fn wait_for_branch_ready(
        &self,
        project: &str,
        mut branch: Branch,
    ) -> Result<Branch, NeonError> {
        let started = Instant::now();
        let mut delay = self.config.poll_interval;
        while branch.current_state.as_deref() != Some("ready") || branch.pending_state.is_some() {
            if started.elapsed() > self.config.operation_timeout {
                return Err(NeonError::TimedOut {
                    what: format!("branch {} to become ready", branch.id),
                    after: self.config.operation_timeout,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(Duration::from_secs(2));
            branch = self.get_branch(project, &branch.id).await?;
        }
        Ok(branch)
    }

    pub async fn update_branch(
        &self,
        project: &str,
        branch_id: &str,
        update: &UpdateBranch,
    ) -> Result<Branch, NeonError> {
        let mut branch = serde_json::Map::new();
        if let Some(name) = &update.name {
            branch.insert("name".into(), json!(name));
        }
        match update.expires_at {
            Some(Some(at)) => {
                branch.insert("expires_at".into(), json!(check_expires_at(at)?));
            }
            Some(None) => {
                branch.insert("expires_at".into(), Value::Null);
            }
            None => {}
        }
        let path = format!(
            "/projects/{}/branches/{}",
            segment(project),
            segment(branch_id)
        );
        let body = json!({ "branch": branch });
        let r: BranchOperations = Self::expect(
            self.call(Method::PATCH, &path, &[], Some(&body), Replay::Safe)
                .await?,
            "PATCH",
            &path,
        )?;
        self.wait_for_operations(project, &r.operations).await?;
        Ok(r.branch)
    }

    /// Deletes a branch and waits for it to be gone. Returns `false` when it was already gone
    /// (Neon answers 204), which counts as success.
    pub async fn delete_branch(&self, project: &str, branch_id: &str) -> Result<bool, NeonError> {
        let path = format!(
            "/projects/{}/branches/{}",
            segment(project),
            segment(branch_id)
        );
        match self
            .call::<BranchOperations>(Method::DELETE, &path, &[], None, Replay::Safe)
            .await?
        {
            None => Ok(false),
            Some(r) => {
                self.wait_for_operations(project, &r.operations).await?;
                Ok(true)
            }
        }
    }

    /// Resets a branch to the current state of its parent (Neon's "restore" from the parent).
    pub async fn reset_branch(&self, project: &str, branch_id: &str) -> Result<Branch, NeonError> {
        let branch = self.get_branch(project, branch_id).await?;
        let parent = branch.parent_id.ok_or_else(|| {
            NeonError::BadInput(format!("branch {branch_id} has no parent to reset to"))
        })?;
        let path = format!(
            "/projects/{}/branches/{}/restore",
            segment(project),
            segment(branch_id)
        );
        let body = json!({ "source_branch_id": parent });
        // Resetting twice ends in the same state, so a replay is safe.
        let r: BranchOperations = Self::expect(
            self.call(Method::POST, &path, &[], Some(&body), Replay::Safe)
                .await?,
            "POST",
            &path,
        )?;
        self.wait_for_operations(project, &r.operations).await?;
        self.wait_for_branch_ready(project, r.branch).await
    }

    // ---- connection, databases, roles ----

    /// The connection URI of a database on a branch, for `role`. `pooled` picks the PgBouncer
    /// host; dump and restore want the direct one.
    pub async fn connection_uri(
        &self,
        project: &str,
        branch_id: &str,
        database: &str,
        role: &str,
        pooled: bool,
    ) -> Result<Secret, NeonError> {
        let path = format!("/projects/{}/connection_uri", segment(project));
        let query = [
            ("branch_id", branch_id.to_string()),
            ("database_name", database.to_string()),
            ("role_name", role.to_string()),
            ("pooled", pooled.to_string()),
        ];
        let r: ConnectionUri = self.get(&path, &query).await?;
        Ok(r.uri)
    }

    pub async fn list_databases(
        &self,
        project: &str,
        branch_id: &str,
    ) -> Result<Vec<Database>, NeonError> {
        let path = format!(
            "/projects/{}/branches/{}/databases",
            segment(project),
            segment(branch_id)
        );
        let r: DatabasesResponse = self.get(&path, &[]).await?;
        Ok(r.databases)
    }

    /// Creates a database (get-or-create: an existing one with the same name is returned).
    pub async fn create_database(
        &self,
        project: &str,
        branch_id: &str,
        name: &str,
        owner: &str,
    ) -> Result<Database, NeonError> {
        let path = format!(
            "/projects/{}/branches/{}/databases",
            segment(project),
            segment(branch_id)
        );
        let body = json!({"database": {"name": name, "owner_name": owner}});
        let find = || async {
            Ok::<_, NeonError>(
                self.list_databases(project, branch_id)
                    .await?
                    .into_iter()
                    .find(|d| d.name == name),
            )
        };
        match self
            .call::<DatabaseOperations>(Method::POST, &path, &[], Some(&body), Replay::ReadBack)
            .await
        {
            Ok(r) => {
                let r = Self::expect(r, "POST", &path)?;
                self.wait_for_operations(project, &r.operations).await?;
                Ok(r.database)
            }
            Err(NeonError::AlreadyExists { .. }) => {
                find().await?.ok_or_else(|| NeonError::NotFound {
                    what: format!("database {name:?} on branch {branch_id}"),
                })
            }
            Err(e @ (NeonError::Network { .. } | NeonError::Unavailable { .. })) => {
                match find().await? {
                    Some(db) => Ok(db),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn list_roles(&self, project: &str, branch_id: &str) -> Result<Vec<Role>, NeonError> {
        let path = format!(
            "/projects/{}/branches/{}/roles",
            segment(project),
            segment(branch_id)
        );
        let r: RolesResponse = self.get(&path, &[]).await?;
        Ok(r.roles)
    }

    pub async fn reveal_password(
        &self,
        project: &str,
        branch_id: &str,
        role: &str,
    ) -> Result<Secret, NeonError> {
        let path = format!(
            "/projects/{}/branches/{}/roles/{}/reveal_password",
            segment(project),
            segment(branch_id),
            segment(role)
        );
        let r: RolePassword = self.get(&path, &[]).await?;
        Ok(r.password)
    }
}

fn check_operation(op: &Operation) -> Result<(), NeonError> {
    if op.status.is_failed() {
        return Err(NeonError::OperationFailed {
            id: op.id.clone(),
            action: op.action.clone(),
            status: op.status.as_str().into(),
            error: op.error.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_limits() {
        assert_eq!(parse_expiry("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_expiry("12h").unwrap(), Duration::from_secs(12 * 3600));
        for bad in ["0s", "31d", "soon", "-1d", ""] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
        assert!(check_expires_at(SystemTime::now() - Duration::from_secs(60)).is_err());
        assert!(check_expires_at(SystemTime::now() + Duration::from_secs(31 * 86400)).is_err());
        assert!(check_expires_at(SystemTime::now() + Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(retry_after_value(" 7 "), Some(Duration::from_secs(7)));
        // A date in the past: retry now.
        assert_eq!(
            retry_after_value("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let ahead = SystemTime::now() + Duration::from_secs(120);
        let wait = retry_after_value(&httpdate::fmt_http_date(ahead)).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(retry_after_value("soon"), None);
    }
}
