//! The emulated control plane: projects, branches, endpoints, databases and operations, and
//! what each write does on the real server.

use std::{
    collections::HashMap,
    io::Write,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use serde_json::{Value, json};

use crate::{
    names::{self, DEFAULT_DATABASE, OWNER_ROLE},
    pg::Admin,
};

/// Neon's limit on how far ahead a branch may expire.
const MAX_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// An error answer: HTTP status and message (rendered as Neon's `{code, message}`).
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

pub fn err(status: u16, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

pub type Answer = Result<(u16, Value), ApiError>;

#[derive(Clone)]
struct ProjectRec {
    id: String,
    name: String,
    created_at: String,
}

#[derive(Clone)]
struct BranchRec {
    id: String,
    name: String,
    parent_id: Option<String>,
    default: bool,
    protected: bool,
    ready: bool,
    created_at: String,
    updated_at: String,
    state_changed_at: String,
    expires_at: Option<String>,
    init_source: Option<String>,
}

#[derive(Clone)]
struct EndpointRec {
    id: String,
    branch_id: String,
    active: bool,
    created_at: String,
}

#[derive(Clone)]
struct DatabaseRec {
    id: i64,
    branch_id: String,
    name: String,
    owner: String,
    real: String,
    created_at: String,
}

#[derive(Clone)]
struct OperationRec {
    id: String,
    branch_id: Option<String>,
    endpoint_id: Option<String>,
    action: &'static str,
    status: &'static str,
    error: Option<String>,
    created_at: String,
    updated_at: String,
    started: std::time::Instant,
}

#[derive(Default)]
struct Project {
    branches: Vec<BranchRec>,
    endpoints: Vec<EndpointRec>,
    databases: Vec<DatabaseRec>,
    operations: Vec<OperationRec>,
}

/// Faults switched on at run time.
#[derive(Default, Debug)]
pub struct Faults {
    /// Answer the next N API requests with this status (and optional Retry-After seconds).
    pub http: Vec<(u16, u32, Option<u64>)>,
    /// The next N operations end `failed`.
    pub fail_operations: u32,
    /// The next N writes do their work, then drop the connection without answering.
    pub drop_after_write: u32,
}

/// What to do on the server once a write's operations finish.
enum Completion {
    /// Open the branch's databases for connections and mark branch and endpoints ready.
    BranchReady { branch_id: String },
    /// Drop these databases.
    Dropped { reals: Vec<String> },
    /// Open one database.
    DatabaseReady { real: String },
}

pub struct Emulator {
    pub api_key: String,
    admin: Admin,
    role_password: String,
    pub operation_delay: Mutex<Duration>,
    pub faults: Mutex<Faults>,
    record: Option<Mutex<std::fs::File>>,
    projects: Mutex<Vec<ProjectRec>>,
    data: Mutex<HashMap<String, Project>>,
    next_database_id: Mutex<i64>,
}

impl Emulator {
    pub fn new(
        api_key: String,
        admin: Admin,
        role_password: String,
        operation_delay: Duration,
        record: Option<PathBuf>,
    ) -> Result<Emulator, String> {
        let record = match record {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("--record {}: {e}", path.display()))?,
            )),
            None => None,
        };
        Ok(Emulator {
            api_key,
            admin,
            role_password,
            operation_delay: Mutex::new(operation_delay),
            faults: Mutex::new(Faults::default()),
            record,
            projects: Mutex::new(Vec::new()),
            data: Mutex::new(HashMap::new()),
            next_database_id: Mutex::new(1),
        })
    }

    pub fn record(&self, line: &Value) {
        if let Some(file) = &self.record {
            let mut file = file.lock().unwrap();
            let _ = writeln!(file, "{line}");
        }
    }

    fn database_id(&self) -> i64 {
        let mut next = self.next_database_id.lock().unwrap();
        *next += 1;
        *next
    }

    // ---- rendering (the shapes of Neon's OpenAPI document) ----

    fn project_json(&self, p: &ProjectRec) -> Value {
        json!({
            "id": p.id, "name": p.name, "platform_id": "aws", "region_id": "aws-us-east-2",
            "provisioner": "k8s-neonvm", "pg_version": 17, "proxy_host": self.admin.host,
            "branch_logical_size_limit": 512, "branch_logical_size_limit_bytes": 536870912u64,
            "store_passwords": true, "creation_source": "neon-emulator",
            "history_retention_seconds": 0, "created_at": p.created_at, "updated_at": p.created_at,
            "consumption_period_start": "0001-01-01T00:00:00Z", "consumption_period_end": "0001-01-01T00:00:00Z",
            "owner_id": "00000000-0000-0000-0000-000000000000", "active_time": 0,
            "data_storage_bytes_hour": 0, "data_transfer_bytes": 0, "written_data_bytes": 0,
            "compute_time_seconds": 0, "active_time_seconds": 0, "cpu_used_sec": 0,
            "settings": {"allowed_ips": {"ips": [], "protected_branches_only": false}},
            "default_endpoint_settings": {"autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 0.25, "suspend_timeout_seconds": 0},
        })
    }

    fn branch_json(project: &str, b: &BranchRec) -> Value {
        let mut v = json!({
            "id": b.id, "project_id": project, "name": b.name,
            "current_state": if b.ready { "ready" } else { "init" },
            "state_changed_at": b.state_changed_at, "creation_source": "neon-emulator",
            "default": b.default, "primary": b.default, "protected": b.protected,
            "cpu_used_sec": 0, "compute_time_seconds": 0, "active_time_seconds": 0,
            "written_data_bytes": 0, "data_transfer_bytes": 0, "logical_size": 0,
            "created_at": b.created_at, "updated_at": b.updated_at,
        });
        if !b.ready {
            v["pending_state"] = json!("ready");
        }
        if let Some(parent) = &b.parent_id {
            v["parent_id"] = json!(parent);
            v["parent_lsn"] = json!("0/0");
        }
        if let Some(at) = &b.expires_at {
            v["expires_at"] = json!(at);
        }
        if let Some(source) = &b.init_source {
            v["init_source"] = json!(source);
        }
        v
    }

    fn endpoint_json(&self, project: &str, e: &EndpointRec) -> Value {
        json!({
            "host": self.admin.host, "id": e.id, "project_id": project, "branch_id": e.branch_id,
            "region_id": "aws-us-east-2", "autoscaling_limit_min_cu": 0.25, "autoscaling_limit_max_cu": 0.25,
            "type": "read_write", "current_state": if e.active { "active" } else { "init" },
            "pooler_enabled": false, "pooler_mode": "transaction", "disabled": false,
            "passwordless_access": true, "creation_source": "neon-emulator",
            "created_at": e.created_at, "updated_at": e.created_at, "settings": {},
            "proxy_host": self.admin.host, "suspend_timeout_seconds": 0, "provisioner": "k8s-neonvm",
        })
    }

    fn operation_json(project: &str, o: &OperationRec) -> Value {
        let mut v = json!({
            "id": o.id, "project_id": project, "action": o.action, "status": o.status,
            "failures_count": if o.status == "failed" { 1 } else { 0 },
            "created_at": o.created_at, "updated_at": o.updated_at,
            "total_duration_ms": o.started.elapsed().as_millis() as u64,
        });
        if let Some(b) = &o.branch_id {
            v["branch_id"] = json!(b);
        }
        if let Some(e) = &o.endpoint_id {
            v["endpoint_id"] = json!(e);
        }
        if let Some(error) = &o.error {
            v["error"] = json!(error);
        }
        v
    }

    fn database_json(d: &DatabaseRec) -> Value {
        json!({"id": d.id, "branch_id": d.branch_id, "name": d.name, "owner_name": d.owner,
               "created_at": d.created_at, "updated_at": d.created_at})
    }

    fn role_json(branch_id: &str, created_at: &str) -> Value {
        json!({"branch_id": branch_id, "name": OWNER_ROLE, "protected": false,
               "authentication_method": "password", "created_at": created_at, "updated_at": created_at})
    }

    fn uri(&self, real: &str) -> String {
        format!(
            "postgresql://{OWNER_ROLE}:{}@{}:{}/{real}?sslmode={}",
            self.role_password, self.admin.host, self.admin.port, self.admin.sslmode
        )
    }

    // ---- helpers ----

    fn with_project<T>(
        &self,
        project: &str,
        f: impl FnOnce(&mut Project) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut data = self.data.lock().unwrap();
        let p = data
            .get_mut(project)
            .ok_or_else(|| err(404, format!("project {project} not found")))?;
        f(p)
    }

    /// 423 while another write's operations are still running, as on Neon.
    fn check_unlocked(p: &Project) -> Result<(), ApiError> {
        if p.operations
            .iter()
            .any(|o| o.status == "scheduling" || o.status == "running")
        {
            return Err(err(
                423,
                "project already has running conflicting operations, scheduling of new ones is prohibited",
            ));
        }
        Ok(())
    }

    fn new_operation(
        branch_id: Option<&str>,
        endpoint_id: Option<&str>,
        action: &'static str,
    ) -> OperationRec {
        let now = names::now();
        OperationRec {
            id: uuid::Uuid::new_v4().to_string(),
            branch_id: branch_id.map(str::to_string),
            endpoint_id: endpoint_id.map(str::to_string),
            action,
            status: "scheduling",
            error: None,
            created_at: now.clone(),
            updated_at: now,
            started: std::time::Instant::now(),
        }
    }

    /// Moves a write's operations through running to finished (or failed, when a fault says
    /// so) in the background, then applies `completion` on the server.
    fn run_operations(self: &Arc<Self>, project: String, ids: Vec<String>, completion: Completion) {
        let this = self.clone();
        let fail = {
            let mut faults = self.faults.lock().unwrap();
            if faults.fail_operations > 0 {
                faults.fail_operations -= 1;
                true
            } else {
                false
            }
        };
        let delay = *self.operation_delay.lock().unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(delay / 2).await;
            this.set_status(&project, &ids, "running", None);
            tokio::time::sleep(delay / 2).await;
            if fail {
                this.set_status(
                    &project,
                    &ids,
                    "failed",
                    Some("injected failure (neon-emulator fault)".into()),
                );
                return;
            }
            let outcome = match completion {
                Completion::BranchReady { branch_id } => {
                    this.open_branch(&project, &branch_id).await
                }
                Completion::Dropped { reals } => {
                    let mut result = Ok(());
                    for real in reals {
                        if let Err(e) = this.admin.drop_database(&real).await {
                            result = Err(e);
                        }
                    }
                    result
                }
                Completion::DatabaseReady { real } => {
                    this.admin.allow_connections(&real, true).await
                }
            };
            match outcome {
                Ok(()) => this.set_status(&project, &ids, "finished", None),
                Err(e) => {
                    tracing::error!(error = %e, "operation failed on the server");
                    this.set_status(&project, &ids, "error", Some(e));
                }
            }
        });
    }

    fn set_status(
        &self,
        project: &str,
        ids: &[String],
        status: &'static str,
        error: Option<String>,
    ) {
        let mut data = self.data.lock().unwrap();
        if let Some(p) = data.get_mut(project) {
            for o in p.operations.iter_mut().filter(|o| ids.contains(&o.id)) {
                o.status = status;
                o.error = error.clone();
                o.updated_at = names::now();
            }
        }
    }

    async fn open_branch(&self, project: &str, branch_id: &str) -> Result<(), String> {
        let reals: Vec<String> = {
            let data = self.data.lock().unwrap();
            data.get(project)
                .map(|p| {
                    p.databases
                        .iter()
                        .filter(|d| d.branch_id == branch_id)
                        .map(|d| d.real.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        for real in reals {
            self.admin.allow_connections(&real, true).await?;
        }
        let mut data = self.data.lock().unwrap();
        if let Some(p) = data.get_mut(project) {
            let now = names::now();
            for b in p.branches.iter_mut().filter(|b| b.id == branch_id) {
                b.ready = true;
                b.state_changed_at = now.clone();
            }
            for e in p.endpoints.iter_mut().filter(|e| e.branch_id == branch_id) {
                e.active = true;
            }
        }
        Ok(())
    }

    fn find_branch(p: &Project, branch_id: &str) -> Result<BranchRec, ApiError> {
        p.branches
            .iter()
            .find(|b| b.id == branch_id)
            .cloned()
            .ok_or_else(|| err(404, format!("branch {branch_id} not found")))
    }

    // ---- projects ----

    /// The project that exists at start: branch `main`, database `neondb`, role `neondb_owner`.
    pub async fn create_initial_project(
        &self,
        id: Option<String>,
        seed_from: Option<&str>,
    ) -> Result<String, String> {
        let id = id.unwrap_or_else(names::project_id);
        self.insert_project(id.clone(), "ferry-local".into(), seed_from)
            .await
            .map_err(|e| e.message)?;
        // Nothing to wait for at start.
        self.with_project(&id, |p| {
            for o in &mut p.operations {
                o.status = "finished";
            }
            for b in &mut p.branches {
                b.ready = true;
            }
            for e in &mut p.endpoints {
                e.active = true;
            }
            Ok(())
        })
        .map_err(|e| e.message)?;
        let reals: Vec<String> = self
            .with_project(&id, |p| {
                Ok(p.databases.iter().map(|d| d.real.clone()).collect())
            })
            .map_err(|e| e.message)?;
        for real in reals {
            self.admin.allow_connections(&real, true).await?;
        }
        Ok(id)
    }

    async fn insert_project(
        &self,
        id: String,
        name: String,
        seed_from: Option<&str>,
    ) -> Result<(BranchRec, EndpointRec, DatabaseRec, Vec<String>), ApiError> {
        if let Some(seed) = seed_from
            && !self
                .admin
                .database_exists(seed)
                .await
                .map_err(|e| err(500, e))?
        {
            return Err(err(400, format!("seed database {seed:?} does not exist")));
        }
        let now = names::now();
        let branch = BranchRec {
            id: names::branch_id(),
            name: "main".into(),
            parent_id: None,
            default: true,
            protected: false,
            ready: false,
            created_at: now.clone(),
            updated_at: now.clone(),
            state_changed_at: now.clone(),
            expires_at: None,
            init_source: None,
        };
        let endpoint = EndpointRec {
            id: names::endpoint_id(),
            branch_id: branch.id.clone(),
            active: false,
            created_at: now.clone(),
        };
        let database = DatabaseRec {
            id: self.database_id(),
            branch_id: branch.id.clone(),
            name: DEFAULT_DATABASE.into(),
            owner: OWNER_ROLE.into(),
            real: names::real_database(DEFAULT_DATABASE),
            created_at: now.clone(),
        };
        self.admin
            .create_database(&database.real, OWNER_ROLE, seed_from)
            .await
            .map_err(|e| err(500, e))?;
        self.admin
            .allow_connections(&database.real, false)
            .await
            .map_err(|e| err(500, e))?;
        let ops = vec![
            Self::new_operation(Some(&branch.id), None, "create_timeline"),
            Self::new_operation(Some(&branch.id), Some(&endpoint.id), "start_compute"),
        ];
        let op_ids = ops.iter().map(|o| o.id.clone()).collect();
        self.projects.lock().unwrap().push(ProjectRec {
            id: id.clone(),
            name,
            created_at: now,
        });
        self.data.lock().unwrap().insert(
            id,
            Project {
                branches: vec![branch.clone()],
                endpoints: vec![endpoint.clone()],
                databases: vec![database.clone()],
                operations: ops,
            },
        );
        Ok((branch, endpoint, database, op_ids))
    }

    pub fn list_projects(&self) -> Answer {
        let projects: Vec<Value> = self
            .projects
            .lock()
            .unwrap()
            .iter()
            .map(|p| self.project_json(p))
            .collect();
        Ok((
            200,
            json!({"projects": projects, "applications": {}, "integrations": {}}),
        ))
    }

    pub fn get_project(&self, project: &str) -> Answer {
        let projects = self.projects.lock().unwrap();
        let p = projects
            .iter()
            .find(|p| p.id == project)
            .ok_or_else(|| err(404, format!("project {project} not found")))?;
        Ok((200, json!({"project": self.project_json(p)})))
    }

    pub async fn create_project(self: &Arc<Self>, body: &Value) -> Answer {
        let name = match body.pointer("/project/name") {
            None | Some(Value::Null) => "ferry-project".to_string(),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
            Some(_) => {
                return Err(err(
                    400,
                    "project.name must be a string of 1 to 64 characters",
                ));
            }
        };
        let id = names::project_id();
        let (branch, endpoint, database, op_ids) =
            self.insert_project(id.clone(), name, None).await?;
        self.run_operations(
            id.clone(),
            op_ids,
            Completion::BranchReady {
                branch_id: branch.id.clone(),
            },
        );
        let project = self
            .projects
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .unwrap();
        let ops = self.with_project(&id, |p| {
            Ok(p.operations
                .iter()
                .map(|o| Self::operation_json(&id, o))
                .collect::<Vec<_>>())
        })?;
        Ok((
            201,
            json!({
                "project": self.project_json(&project),
                "connection_uris": [self.connection_details(&database)],
                "roles": [Self::role_json(&branch.id, &branch.created_at)],
                "databases": [Self::database_json(&database)],
                "operations": ops,
                "branch": Self::branch_json(&id, &branch),
                "endpoints": [self.endpoint_json(&id, &endpoint)],
            }),
        ))
    }

    fn connection_details(&self, d: &DatabaseRec) -> Value {
        json!({
            "connection_uri": self.uri(&d.real),
            "connection_parameters": {"database": d.name, "password": self.role_password, "role": OWNER_ROLE,
                                       "host": self.admin.host, "pooler_host": self.admin.host},
        })
    }

    // ---- branches ----

    pub fn list_branches(&self, project: &str, query: &HashMap<String, String>) -> Answer {
        let limit: usize = match query.get("limit") {
            None => 10000,
            Some(l) => l
                .parse()
                .ok()
                .filter(|n| (1..=10000).contains(n))
                .ok_or_else(|| err(400, "limit must be a number from 1 to 10000"))?,
        };
        self.with_project(project, |p| {
            let mut branches: Vec<&BranchRec> = p
                .branches
                .iter()
                .filter(|b| match query.get("search") {
                    Some(s) => b.name.contains(s.as_str()) || b.id.contains(s.as_str()),
                    None => true,
                })
                .collect();
            branches.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
            let start = match query.get("cursor") {
                Some(c) => branches.iter().position(|b| &b.id == c).map(|i| i + 1).unwrap_or(branches.len()),
                None => 0,
            };
            let page: Vec<&BranchRec> = branches.into_iter().skip(start).take(limit).collect();
            // Like the real service, `next` is present even on the last page.
            let next = page.last().map(|b| b.id.clone()).or_else(|| query.get("cursor").cloned()).unwrap_or_default();
            Ok((
                200,
                json!({
                    "branches": page.iter().map(|b| Self::branch_json(project, b)).collect::<Vec<_>>(),
                    "annotations": {},
                    "pagination": {"next": next, "sort_by": "created_at", "sort_order": "ASC"},
                }),
            ))
        })
    }

    pub fn get_branch(&self, project: &str, branch_id: &str) -> Answer {
        self.with_project(project, |p| {
            let b = Self::find_branch(p, branch_id)?;
            Ok((
                200,
                json!({"branch": Self::branch_json(project, &b),
                       "annotation": {"object": {"type": "console/branch", "id": b.id}, "value": {}}}),
            ))
        })
    }

    pub fn branch_endpoints(&self, project: &str, branch_id: &str) -> Answer {
        self.with_project(project, |p| {
            Self::find_branch(p, branch_id)?;
            let endpoints: Vec<Value> = p
                .endpoints
                .iter()
                .filter(|e| e.branch_id == branch_id)
                .map(|e| self.endpoint_json(project, e))
                .collect();
            Ok((200, json!({"endpoints": endpoints})))
        })
    }

    pub fn project_endpoints(&self, project: &str) -> Answer {
        self.with_project(project, |p| {
            let endpoints: Vec<Value> = p
                .endpoints
                .iter()
                .map(|e| self.endpoint_json(project, e))
                .collect();
            Ok((200, json!({"endpoints": endpoints})))
        })
    }

    fn parse_expiry(
        value: &Value,
        branch: Option<&BranchRec>,
        has_children: bool,
    ) -> Result<Option<String>, ApiError> {
        let text = match value {
            Value::Null => return Ok(None),
            Value::String(s) => s,
            _ => return Err(err(400, "expires_at must be an RFC 3339 timestamp")),
        };
        let at = humantime::parse_rfc3339_weak(text).map_err(|_| {
            err(
                400,
                format!("expires_at {text:?} is not an RFC 3339 timestamp"),
            )
        })?;
        let now = SystemTime::now();
        if at <= now {
            return Err(err(400, "expires_at must be in the future"));
        }
        if at.duration_since(now).unwrap_or_default() > MAX_EXPIRY {
            return Err(err(400, "expires_at must be at most 30 days in the future"));
        }
        if let Some(b) = branch
            && (b.default || b.protected || has_children)
        {
            return Err(err(
                400,
                "expires_at cannot be set on a default, protected or parent branch",
            ));
        }
        Ok(Some(names::rfc3339(at)))
    }

    pub async fn create_branch(self: &Arc<Self>, project: &str, body: &Value) -> Answer {
        let spec = body.get("branch").cloned().unwrap_or(json!({}));
        if !spec.is_object() {
            return Err(err(400, "branch must be an object"));
        }
        let known = [
            "parent_id",
            "name",
            "parent_lsn",
            "parent_timestamp",
            "protected",
            "archived",
            "init_source",
            "expires_at",
        ];
        if let Some(key) = spec
            .as_object()
            .unwrap()
            .keys()
            .find(|k| !known.contains(&k.as_str()))
        {
            return Err(err(400, format!("unknown field branch.{key}")));
        }
        for point in ["parent_lsn", "parent_timestamp"] {
            if spec.get(point).is_some_and(|v| !v.is_null()) {
                return Err(err(
                    400,
                    format!(
                        "{point}: neon-emulator cannot branch from a point in time; it only copies the parent's current data"
                    ),
                ));
            }
        }
        let name = match spec.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 256 => Some(s.clone()),
            Some(_) => {
                return Err(err(
                    400,
                    "branch.name must be a string of 1 to 256 characters",
                ));
            }
        };
        let init_source = match spec.get("init_source").and_then(Value::as_str) {
            None => None,
            Some("parent-data") => Some("parent-data".to_string()),
            Some("schema-only") => Some("schema-only".to_string()),
            Some(other) => {
                return Err(err(
                    400,
                    format!("init_source {other:?} is not parent-data or schema-only"),
                ));
            }
        };
        let expires_at =
            Self::parse_expiry(spec.get("expires_at").unwrap_or(&Value::Null), None, false)?;
        let protected = spec
            .get("protected")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let endpoints = match body.get("endpoints") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list.clone(),
            Some(_) => return Err(err(400, "endpoints must be an array")),
        };
        for e in &endpoints {
            match e.get("type").and_then(Value::as_str) {
                Some("read_write") => {}
                Some("read_only") => {
                    return Err(err(400, "neon-emulator serves read_write endpoints only"));
                }
                _ => return Err(err(400, "endpoints[].type must be read_write or read_only")),
            }
        }
        let now = names::now();
        let branch_id = names::branch_id();
        let (branch, endpoint, parent_dbs, ops) = self.with_project(project, |p| {
            Self::check_unlocked(p)?;
            let parent = match spec
                .get("parent_id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(id) => {
                    if id.len() > 60
                        || !id
                            .bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    {
                        return Err(err(400, "parent_id must match ^[a-z0-9-]{1,60}$"));
                    }
                    Self::find_branch(p, id)?
                }
                None => p
                    .branches
                    .iter()
                    .find(|b| b.default)
                    .cloned()
                    .ok_or_else(|| err(500, "no default branch"))?,
            };
            let name = name.clone().unwrap_or_else(|| branch_id.clone());
            if p.branches.iter().any(|b| b.name == name) {
                return Err(err(
                    409,
                    format!("branch with name \"{name}\" already exists"),
                ));
            }
            let branch = BranchRec {
                id: branch_id.clone(),
                name,
                parent_id: Some(parent.id.clone()),
                default: false,
                protected,
                ready: false,
                created_at: now.clone(),
                updated_at: now.clone(),
                state_changed_at: now.clone(),
                expires_at: expires_at.clone(),
                init_source: init_source.clone(),
            };
            let endpoint = (!endpoints.is_empty()).then(|| EndpointRec {
                id: names::endpoint_id(),
                branch_id: branch_id.clone(),
                active: false,
                created_at: now.clone(),
            });
            let mut ops = vec![Self::new_operation(Some(&branch_id), None, "create_branch")];
            if let Some(e) = &endpoint {
                ops.push(Self::new_operation(
                    Some(&branch_id),
                    Some(&e.id),
                    "start_compute",
                ));
            }
            let parent_dbs: Vec<DatabaseRec> = p
                .databases
                .iter()
                .filter(|d| d.branch_id == parent.id)
                .cloned()
                .collect();
            // Reserve the branch and its operations before the copy, so that concurrent writes
            // get 423 and duplicate names 409.
            p.branches.push(branch.clone());
            if let Some(e) = &endpoint {
                p.endpoints.push(e.clone());
            }
            p.operations.extend(ops.iter().cloned());
            Ok((branch, endpoint, parent_dbs, ops))
        })?;
        let copied = self
            .copy_databases(
                &parent_dbs,
                &branch.id,
                init_source.as_deref() == Some("schema-only"),
            )
            .await;
        let copies = match copied {
            Ok(copies) => copies,
            Err(e) => {
                let op_ids: Vec<String> = ops.iter().map(|o| o.id.clone()).collect();
                let _ = self.with_project(project, |p| {
                    p.branches.retain(|b| b.id != branch.id);
                    p.endpoints.retain(|e| e.branch_id != branch.id);
                    p.operations.retain(|o| !op_ids.contains(&o.id));
                    Ok(())
                });
                return Err(err(
                    500,
                    format!("copying the parent's databases failed: {e}"),
                ));
            }
        };
        self.with_project(project, |p| {
            p.databases.extend(copies.iter().cloned());
            Ok(())
        })?;
        self.run_operations(
            project.to_string(),
            ops.iter().map(|o| o.id.clone()).collect(),
            Completion::BranchReady {
                branch_id: branch.id.clone(),
            },
        );
        let mut answer = json!({
            "branch": Self::branch_json(project, &branch),
            "endpoints": endpoint.iter().map(|e| self.endpoint_json(project, e)).collect::<Vec<_>>(),
            "operations": ops.iter().map(|o| Self::operation_json(project, o)).collect::<Vec<_>>(),
            "roles": [Self::role_json(&branch.id, &now)],
            "databases": copies.iter().map(Self::database_json).collect::<Vec<_>>(),
        });
        // Like Neon: connection URIs only when there is exactly one database and one role.
        if endpoint.is_some() && copies.len() == 1 {
            answer["connection_uris"] = json!([self.connection_details(&copies[0])]);
        }
        Ok((201, answer))
    }

    pub fn update_branch(&self, project: &str, branch_id: &str, body: &Value) -> Answer {
        let spec = body
            .get("branch")
            .ok_or_else(|| err(400, "the body needs a branch object"))?;
        let spec = spec
            .as_object()
            .ok_or_else(|| err(400, "branch must be an object"))?;
        self.with_project(project, |p| {
            Self::check_unlocked(p)?;
            let current = Self::find_branch(p, branch_id)?;
            let has_children = p
                .branches
                .iter()
                .any(|b| b.parent_id.as_deref() == Some(branch_id));
            let mut updated = current.clone();
            for (key, value) in spec {
                match key.as_str() {
                    "name" => {
                        let name = value
                            .as_str()
                            .filter(|s| !s.is_empty() && s.chars().count() <= 256)
                            .ok_or_else(|| {
                                err(400, "branch.name must be a string of 1 to 256 characters")
                            })?;
                        if p.branches
                            .iter()
                            .any(|b| b.name == name && b.id != branch_id)
                        {
                            return Err(err(
                                409,
                                format!("branch with name \"{name}\" already exists"),
                            ));
                        }
                        updated.name = name.to_string();
                    }
                    "protected" => {
                        updated.protected = value
                            .as_bool()
                            .ok_or_else(|| err(400, "branch.protected must be a boolean"))?;
                    }
                    "expires_at" => {
                        updated.expires_at =
                            Self::parse_expiry(value, Some(&current), has_children)?;
                    }
                    other => return Err(err(400, format!("unknown field branch.{other}"))),
                }
            }
            updated.updated_at = names::now();
            let slot = p.branches.iter_mut().find(|b| b.id == branch_id).unwrap();
            *slot = updated.clone();
            Ok((
                200,
                json!({"branch": Self::branch_json(project, &updated), "operations": []}),
            ))
        })
    }

    pub fn delete_branch(self: &Arc<Self>, project: &str, branch_id: &str) -> Answer {
        let (branch, reals, ops) = self.with_project(project, |p| {
            let Some(branch) = p.branches.iter().find(|b| b.id == branch_id).cloned() else {
                return Ok((None, Vec::new(), Vec::new()));
            };
            if branch.default {
                return Err(err(400, "cannot delete the project's default branch"));
            }
            if p.branches
                .iter()
                .any(|b| b.parent_id.as_deref() == Some(branch_id))
            {
                return Err(err(400, "cannot delete a branch that has child branches"));
            }
            if branch.protected {
                return Err(err(400, "cannot delete a protected branch"));
            }
            Self::check_unlocked(p)?;
            let reals: Vec<String> = p
                .databases
                .iter()
                .filter(|d| d.branch_id == branch_id)
                .map(|d| d.real.clone())
                .collect();
            let mut ops = vec![Self::new_operation(
                Some(branch_id),
                None,
                "delete_timeline",
            )];
            for e in p.endpoints.iter().filter(|e| e.branch_id == branch_id) {
                ops.insert(
                    0,
                    Self::new_operation(Some(branch_id), Some(&e.id), "suspend_compute"),
                );
            }
            p.branches.retain(|b| b.id != branch_id);
            p.endpoints.retain(|e| e.branch_id != branch_id);
            p.databases.retain(|d| d.branch_id != branch_id);
            p.operations.extend(ops.iter().cloned());
            Ok((Some(branch), reals, ops))
        })?;
        let Some(branch) = branch else {
            return Ok((204, Value::Null));
        };
        self.run_operations(
            project.to_string(),
            ops.iter().map(|o| o.id.clone()).collect(),
            Completion::Dropped { reals },
        );
        Ok((
            200,
            json!({"branch": Self::branch_json(project, &branch),
                   "operations": ops.iter().map(|o| Self::operation_json(project, o)).collect::<Vec<_>>()}),
        ))
    }

    /// Resets a branch to the current data of `source_branch_id` (its parent, for a reset).
    pub async fn restore_branch(
        self: &Arc<Self>,
        project: &str,
        branch_id: &str,
        body: &Value,
    ) -> Answer {
        let source = body
            .get("source_branch_id")
            .and_then(Value::as_str)
            .ok_or_else(|| err(400, "source_branch_id is required"))?
            .to_string();
        for point in ["source_lsn", "source_timestamp"] {
            if body.get(point).is_some_and(|v| !v.is_null()) {
                return Err(err(
                    400,
                    format!("{point}: neon-emulator cannot restore to a point in time"),
                ));
            }
        }
        if body
            .get("preserve_under_name")
            .is_some_and(|v| !v.is_null())
        {
            return Err(err(
                400,
                "preserve_under_name is not supported by neon-emulator",
            ));
        }
        let (branch, source_dbs, old, ops) = self.with_project(project, |p| {
            Self::check_unlocked(p)?;
            let branch = Self::find_branch(p, branch_id)?;
            Self::find_branch(p, &source)?;
            if source == branch_id {
                return Err(err(400, "a branch cannot be restored from itself"));
            }
            let source_dbs: Vec<DatabaseRec> = p
                .databases
                .iter()
                .filter(|d| d.branch_id == source)
                .cloned()
                .collect();
            let old: Vec<DatabaseRec> = p
                .databases
                .iter()
                .filter(|d| d.branch_id == branch_id)
                .cloned()
                .collect();
            let mut ops = vec![Self::new_operation(
                Some(branch_id),
                None,
                "create_timeline",
            )];
            for e in p.endpoints.iter_mut().filter(|e| e.branch_id == branch_id) {
                e.active = false;
                ops.push(Self::new_operation(
                    Some(branch_id),
                    Some(&e.id),
                    "start_compute",
                ));
            }
            for b in p.branches.iter_mut().filter(|b| b.id == branch_id) {
                b.ready = false;
            }
            p.operations.extend(ops.iter().cloned());
            Ok((branch, source_dbs, old, ops))
        })?;
        let now = names::now();
        let result: Result<Vec<DatabaseRec>, String> = async {
            for d in &old {
                self.admin.drop_database(&d.real).await?;
            }
            self.copy_databases(&source_dbs, branch_id, false).await
        }
        .await;
        let op_ids: Vec<String> = ops.iter().map(|o| o.id.clone()).collect();
        let (copies, failure) = match result {
            Ok(copies) => (copies, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        self.with_project(project, |p| {
            p.databases.retain(|d| d.branch_id != branch_id);
            p.databases.extend(copies);
            if let Some(b) = p.branches.iter_mut().find(|b| b.id == branch_id) {
                b.updated_at = now.clone();
            }
            Ok(())
        })?;
        if let Some(e) = failure {
            self.set_status(project, &op_ids, "error", Some(e.clone()));
            return Err(err(500, format!("restoring the branch failed: {e}")));
        }
        self.run_operations(
            project.to_string(),
            op_ids,
            Completion::BranchReady {
                branch_id: branch_id.to_string(),
            },
        );
        let mut shown = branch;
        shown.ready = false;
        Ok((
            200,
            json!({"branch": Self::branch_json(project, &shown),
                   "operations": ops.iter().map(|o| Self::operation_json(project, o)).collect::<Vec<_>>()}),
        ))
    }

    /// Copies `sources` (with `CREATE DATABASE ... TEMPLATE`) as the databases of `branch_id`,
    /// closed to connections until the branch's operations finish. On failure, drops what it
    /// made.
    async fn copy_databases(
        &self,
        sources: &[DatabaseRec],
        branch_id: &str,
        schema_only: bool,
    ) -> Result<Vec<DatabaseRec>, String> {
        let now = names::now();
        let mut copies: Vec<DatabaseRec> = Vec::new();
        for d in sources {
            let copy = DatabaseRec {
                id: self.database_id(),
                branch_id: branch_id.to_string(),
                name: d.name.clone(),
                owner: d.owner.clone(),
                real: names::real_database(&d.name),
                created_at: now.clone(),
            };
            let made = async {
                self.admin
                    .create_database(&copy.real, &copy.owner, Some(&d.real))
                    .await?;
                if schema_only {
                    self.admin.truncate_all(&copy.real).await?;
                }
                self.admin.allow_connections(&copy.real, false).await
            }
            .await;
            if let Err(e) = made {
                for c in copies.iter().chain([&copy]) {
                    let _ = self.admin.drop_database(&c.real).await;
                }
                return Err(e);
            }
            copies.push(copy);
        }
        Ok(copies)
    }

    // ---- operations ----

    pub fn list_operations(&self, project: &str, query: &HashMap<String, String>) -> Answer {
        let limit: usize = query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(10)
            .clamp(1, 1000);
        self.with_project(project, |p| {
            let mut ops: Vec<&OperationRec> = p.operations.iter().collect();
            ops.reverse(); // newest first, as Neon lists them
            let start = match query.get("cursor") {
                Some(c) => ops
                    .iter()
                    .position(|o| &o.id == c)
                    .map(|i| i + 1)
                    .unwrap_or(ops.len()),
                None => 0,
            };
            let shown: Vec<&&OperationRec> = ops.iter().skip(start).take(limit).collect();
            let page: Vec<Value> = shown
                .iter()
                .map(|o| Self::operation_json(project, o))
                .collect();
            let cursor = shown.last().map(|o| o.id.clone()).unwrap_or_default();
            Ok((
                200,
                json!({"operations": page, "pagination": {"cursor": cursor}}),
            ))
        })
    }

    pub fn get_operation(&self, project: &str, id: &str) -> Answer {
        self.with_project(project, |p| {
            let o = p
                .operations
                .iter()
                .find(|o| o.id == id)
                .ok_or_else(|| err(404, format!("operation {id} not found")))?;
            Ok((200, json!({"operation": Self::operation_json(project, o)})))
        })
    }

    // ---- databases, roles, connection URIs ----

    pub fn list_databases(&self, project: &str, branch_id: &str) -> Answer {
        self.with_project(project, |p| {
            Self::find_branch(p, branch_id)?;
            let dbs: Vec<Value> = p
                .databases
                .iter()
                .filter(|d| d.branch_id == branch_id)
                .map(Self::database_json)
                .collect();
            Ok((200, json!({"databases": dbs})))
        })
    }

    pub async fn create_database(
        self: &Arc<Self>,
        project: &str,
        branch_id: &str,
        body: &Value,
    ) -> Answer {
        let name = body
            .pointer("/database/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 63)
            .ok_or_else(|| err(400, "database.name must be a string of 1 to 63 characters"))?
            .to_string();
        let owner = body
            .pointer("/database/owner_name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(400, "database.owner_name is required"))?
            .to_string();
        if owner != OWNER_ROLE {
            return Err(err(404, format!("role {owner:?} not found")));
        }
        let now = names::now();
        let (db, ops) = self.with_project(project, |p| {
            Self::check_unlocked(p)?;
            Self::find_branch(p, branch_id)?;
            if p.databases
                .iter()
                .any(|d| d.branch_id == branch_id && d.name == name)
            {
                return Err(err(
                    409,
                    format!("database with name \"{name}\" already exists"),
                ));
            }
            let db = DatabaseRec {
                id: self.database_id(),
                branch_id: branch_id.to_string(),
                name: name.clone(),
                owner: owner.clone(),
                real: names::real_database(&name),
                created_at: now.clone(),
            };
            let ops = vec![Self::new_operation(Some(branch_id), None, "apply_config")];
            p.databases.push(db.clone());
            p.operations.extend(ops.iter().cloned());
            Ok((db, ops))
        })?;
        let made = async {
            self.admin
                .create_database(&db.real, &db.owner, None)
                .await?;
            self.admin.allow_connections(&db.real, false).await
        }
        .await;
        let op_ids: Vec<String> = ops.iter().map(|o| o.id.clone()).collect();
        if let Err(e) = made {
            let _ = self.with_project(project, |p| {
                p.databases.retain(|d| d.real != db.real);
                p.operations.retain(|o| !op_ids.contains(&o.id));
                Ok(())
            });
            return Err(err(500, format!("creating the database failed: {e}")));
        }
        self.run_operations(
            project.to_string(),
            op_ids,
            Completion::DatabaseReady {
                real: db.real.clone(),
            },
        );
        Ok((
            201,
            json!({"database": Self::database_json(&db),
                   "operations": ops.iter().map(|o| Self::operation_json(project, o)).collect::<Vec<_>>()}),
        ))
    }

    pub fn list_roles(&self, project: &str, branch_id: &str) -> Answer {
        self.with_project(project, |p| {
            let b = Self::find_branch(p, branch_id)?;
            Ok((
                200,
                json!({"roles": [Self::role_json(branch_id, &b.created_at)]}),
            ))
        })
    }

    pub fn get_role(&self, project: &str, branch_id: &str, role: &str) -> Answer {
        self.with_project(project, |p| {
            let b = Self::find_branch(p, branch_id)?;
            if role != OWNER_ROLE {
                return Err(err(404, format!("role {role:?} not found")));
            }
            Ok((
                200,
                json!({"role": Self::role_json(branch_id, &b.created_at)}),
            ))
        })
    }

    pub fn reveal_password(&self, project: &str, branch_id: &str, role: &str) -> Answer {
        self.with_project(project, |p| {
            Self::find_branch(p, branch_id)?;
            if role != OWNER_ROLE {
                return Err(err(404, format!("role {role:?} not found")));
            }
            Ok((200, json!({"password": self.role_password})))
        })
    }

    pub fn connection_uri(&self, project: &str, query: &HashMap<String, String>) -> Answer {
        let database = query
            .get("database_name")
            .ok_or_else(|| err(400, "database_name is required"))?;
        let role = query
            .get("role_name")
            .ok_or_else(|| err(400, "role_name is required"))?;
        self.with_project(project, |p| {
            let branch_id = match query.get("branch_id") {
                Some(id) => Self::find_branch(p, id)?.id,
                None => p
                    .branches
                    .iter()
                    .find(|b| b.default)
                    .map(|b| b.id.clone())
                    .unwrap_or_default(),
            };
            if role != OWNER_ROLE {
                return Err(err(404, format!("role {role:?} not found")));
            }
            let db = p
                .databases
                .iter()
                .find(|d| d.branch_id == branch_id && &d.name == database)
                .ok_or_else(|| {
                    err(
                        404,
                        format!("database {database:?} not found on branch {branch_id}"),
                    )
                })?;
            Ok((200, json!({"uri": self.uri(&db.real)})))
        })
    }

    /// Branches whose `expires_at` has passed, for the sweeper.
    fn expired(&self) -> Vec<(String, String)> {
        let now = SystemTime::now();
        let data = self.data.lock().unwrap();
        let mut out = Vec::new();
        for (project, p) in data.iter() {
            for b in &p.branches {
                if let Some(at) = &b.expires_at
                    && humantime::parse_rfc3339_weak(at).is_ok_and(|t| t <= now)
                {
                    out.push((project.clone(), b.id.clone()));
                }
            }
        }
        out
    }
}

/// Deletes expired branches once a second, as Neon's background job does.
pub fn spawn_expiry_sweeper(emulator: Arc<Emulator>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (project, branch) in emulator.expired() {
                match emulator.delete_branch(&project, &branch) {
                    Ok(_) => tracing::info!(%project, %branch, "deleted an expired branch"),
                    Err(e) => {
                        tracing::debug!(%project, %branch, error = %e.message, "expired branch not deleted yet")
                    }
                }
            }
        }
    });
}
