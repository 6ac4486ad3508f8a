//! The Step Functions workflows (infra/statemachines, infra/template.yaml): checked by the
//! validators AWS users run, checked against the functions' schemas, and run end to end by an
//! ASL interpreter (aws-local-stepfunctions, through infra/local/run-workflow) whose Task states
//! invoke the real function binaries (`lambda-host`) against the local stack: PostgreSQL, the
//! Neon API emulator and the S3-compatible server.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use ferry::store::{Key, ObjectUrl, Store};
use ferry_tests::{
    EmulatorOptions, LambdaHost, NeonEmulator, PgServer, lambda::FUNCTIONS, pg::SUPERUSER,
    pg::tools_dir, shared_pg, shared_s3, unique_name,
};
use serde_json::{Value, json};

use crate::snapshot::context;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn template() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// The state machines of the template: logical id -> (definition file, substitutions).
fn state_machines() -> BTreeMap<String, (PathBuf, serde_yaml::Mapping)> {
    let template = template();
    let mut out = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() == Some("AWS::Serverless::StateMachine") {
            let uri = resource["Properties"]["DefinitionUri"].as_str().unwrap();
            let subs = resource["Properties"]["DefinitionSubstitutions"]
                .as_mapping()
                .cloned()
                .unwrap_or_default();
            out.insert(
                id.as_str().unwrap().to_string(),
                (repo().join("infra").join(uri), subs),
            );
        }
    }
    out
}

fn definition(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The logical id a substitution names through `!GetAtt X.Arn` or `!Ref X`.
fn named_resource(value: &serde_yaml::Value) -> Option<String> {
    let serde_yaml::Value::Tagged(tagged) = value else {
        return None;
    };
    let text = tagged.value.as_str()?;
    match tagged.tag.to_string().as_str() {
        "!GetAtt" => Some(text.split('.').next()?.to_string()),
        "!Ref" => Some(text.to_string()),
        _ => None,
    }
}

fn npm_bin(name: &str) -> PathBuf {
    tools_dir().join("npm/node_modules/.bin").join(name)
}

#[test]
fn asl_validator_accepts_every_state_machine_and_rejects_a_broken_one() {
    let machines = state_machines();
    assert_eq!(
        machines.keys().cloned().collect::<Vec<_>>(),
        [
            "BackupStateMachine",
            "CsvImportStateMachine",
            "MigrateStateMachine",
            "PreviewBranchStateMachine"
        ]
    );
    for (id, (path, _)) in &machines {
        let out = Command::new(npm_bin("asl-validator"))
            .arg("--json-path")
            .arg(path)
            .output()
            .expect("asl-validator (npm, installed by dev/setup)");
        assert!(
            out.status.success(),
            "{id}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The validator does judge: a Next to a state that does not exist fails it.
    let mut broken = definition(&machines["PreviewBranchStateMachine"].0);
    broken["States"]["CreateBranch"]["Next"] = json!("NoSuchState");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), broken.to_string()).unwrap();
    let out = Command::new(npm_bin("asl-validator"))
        .arg("--json-path")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken definition passed");
}

fn sam_validate(template: &Path) -> std::process::Output {
    Command::new(tools_dir().join("sam/bin/sam"))
        .args(["validate", "--lint", "--template"])
        .arg(template)
        .env("SAM_CLI_TELEMETRY", "0")
        .current_dir(template.parent().unwrap())
        .output()
        .expect("sam (PyPI aws-sam-cli, installed by dev/setup)")
}

#[test]
fn sam_validate_lint_passes_and_catches_a_broken_template() {
    let out = sam_validate(&repo().join("infra/template.yaml"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The linter does judge: a substitution naming a function that does not exist fails it.
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap();
    let broken = text.replace(
        "BranchFunctionArn: !GetAtt BranchFunction.Arn",
        "BranchFunctionArn: !GetAtt NoSuchFunction.Arn",
    );
    assert_ne!(broken, text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, broken).unwrap();
    std::fs::create_dir(dir.path().join("statemachines")).unwrap();
    for entry in std::fs::read_dir(repo().join("infra/statemachines")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("statemachines").join(entry.file_name()),
        )
        .unwrap();
    }
    let out = sam_validate(&path);
    assert!(!out.status.success(), "a broken template passed");
}

/// Every Task state (in Maps too), with the scope (the States object) it is in.
fn tasks(states: &Value, out: &mut Vec<(String, Value)>) {
    for (name, state) in states.as_object().unwrap() {
        match state["Type"].as_str() {
            Some("Task") => out.push((name.clone(), state.clone())),
            Some("Map") => tasks(&state["ItemProcessor"]["States"], out),
            _ => {}
        }
    }
}

/// The job a function of the template runs: its `FERRY_FUNCTION`, every function being the
/// one `ferry-lambda` binary.
fn job_of(resource: &serde_yaml::Value) -> Option<&str> {
    if resource["Metadata"]["BuildProperties"]["Binary"].as_str() != Some("ferry-lambda") {
        return None;
    }
    resource["Properties"]["Environment"]["Variables"]["FERRY_FUNCTION"].as_str()
}

#[test]
fn every_task_names_a_function_of_the_template_it_may_invoke() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let mut functions = BTreeMap::new();
    for (id, r) in resources {
        if r["Type"].as_str() == Some("AWS::Serverless::Function") {
            let binary = job_of(r).unwrap_or_else(|| panic!("{id:?} runs no job"));
            assert!(FUNCTIONS.contains(&binary), "{id:?} runs {binary}");
            assert_eq!(
                r["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda")
            );
            functions.insert(id.as_str().unwrap().to_string(), binary.to_string());
        }
    }
    assert_eq!(functions.len(), 5, "five functions: {functions:?}");
    let mut checked = 0;
    for (id, (path, subs)) in state_machines() {
        let text = std::fs::read_to_string(&path).unwrap();
        // Every ${Name} has a substitution, and every substitution is used.
        let mut used = Vec::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("${") {
            let end = rest[at..].find('}').unwrap();
            used.push(rest[at + 2..at + end].to_string());
            rest = &rest[at + end..];
        }
        for name in &used {
            assert!(
                subs.contains_key(name.as_str()),
                "{id}: ${{{name}}} has no DefinitionSubstitutions entry"
            );
        }
        for name in subs.keys() {
            assert!(
                used.contains(&name.as_str().unwrap().to_string()),
                "{id}: substitution {name:?} is not used"
            );
        }
        let policies =
            serde_yaml::to_string(&resources[id.as_str()]["Properties"]["Policies"]).unwrap();
        let mut all = Vec::new();
        tasks(&definition(&path)["States"], &mut all);
        for (name, task) in all {
            let resource = task["Resource"].as_str().unwrap();
            if resource == "arn:aws:states:::sns:publish" {
                assert_eq!(task["Parameters"]["TopicArn"], "${FailureTopicArn}");
                continue;
            }
            if resource == "arn:aws:states:::events:putEvents" {
                let entry = &task["Parameters"]["Entries"][0];
                assert_eq!(entry["Source"], "ferry", "{id}.{name}");
                assert_eq!(entry["EventBusName"], "default", "{id}.{name}");
                assert!(
                    policies.contains("EventBridgePutEventsPolicy"),
                    "{id} may not put events: {policies}"
                );
                continue;
            }
            let sub = resource
                .strip_prefix("${")
                .and_then(|r| r.strip_suffix('}'))
                .unwrap_or_else(|| panic!("{id}.{name}: Resource {resource} is not a function"));
            let function = named_resource(&subs[sub]).unwrap();
            assert!(
                functions.contains_key(&function),
                "{id}.{name}: {function} is not a function of the template"
            );
            assert!(
                policies.contains(&format!("FunctionName: !Ref {function}"))
                    || policies.contains(&format!("FunctionName: {function}")),
                "{id} may not invoke {function}: {policies}"
            );
            assert!(
                task["TimeoutSeconds"].as_u64().is_some(),
                "{id}.{name} has no TimeoutSeconds"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} tasks checked");
}

/// Follows `segments` through a JSON Schema (properties, `$ref`s into `$defs`, `anyOf`,
/// array items for `[n]`); whether the path can exist.
fn schema_has(root: &Value, node: &Value, segments: &[String]) -> bool {
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(r) => &root["$defs"][r.trim_start_matches("#/$defs/")],
        None => node,
    };
    for alternatives in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(alternatives).and_then(Value::as_array)
            && list.iter().any(|alt| schema_has(root, alt, segments))
        {
            return true;
        }
    }
    let Some((first, rest)) = segments.split_first() else {
        return true;
    };
    if first.starts_with('[') {
        return node
            .get("items")
            .is_some_and(|items| schema_has(root, items, rest));
    }
    node.get("properties")
        .and_then(|p| p.get(first))
        .is_some_and(|child| schema_has(root, child, rest))
}

/// `$.a.b[0].c` -> ["a", "b", "[0]", "c"].
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.trim_start_matches("$.").split('.') {
        match part.find('[') {
            Some(at) => {
                if at > 0 {
                    out.push(part[..at].to_string());
                }
                out.push(part[at..].to_string());
            }
            None => out.push(part.to_string()),
        }
    }
    out
}

/// Every `$.path` a value reads (`.$` fields, intrinsic arguments), not `$$.` context paths.
fn read_paths(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key.ends_with(".$") || key == "Variable" || key.ends_with("Path") {
                    if let Some(text) = v.as_str() {
                        let mut rest = text;
                        while let Some(at) = rest.find("$.") {
                            let before = rest[..at].chars().last();
                            let end = rest[at..]
                                .find(|c: char| !(c.is_alphanumeric() || "_.[]$".contains(c)))
                                .map_or(rest.len(), |e| at + e);
                            if before != Some('$') {
                                out.push(rest[at..end].to_string());
                            }
                            rest = &rest[end..];
                        }
                    }
                } else {
                    read_paths(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| read_paths(v, out)),
        _ => {}
    }
}

/// What a Task leaves at its ResultPath: the whole output (a schema) or a selection of it.
enum Produced {
    Whole,
    Selected(BTreeMap<String, Option<Vec<String>>>),
}

/// Checks one scope (a States object): every path read under a Task's ResultPath exists in the
/// producing function's output schema. Returns the problems and how many paths were checked.
fn check_scope(
    states: &Value,
    functions: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) -> usize {
    let schema = |binary: &str| -> Value {
        let path = repo().join(format!("infra/schemas/{binary}.output.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut producers: BTreeMap<String, (String, Value, Produced)> = BTreeMap::new();
    let mut checked = 0;
    for (name, state) in states.as_object().unwrap() {
        if state["Type"] == "Map" {
            checked += check_scope(&state["ItemProcessor"]["States"], functions, problems);
        }
        let Some(sub) = state["Resource"]
            .as_str()
            .and_then(|r| r.strip_prefix("${"))
            .and_then(|r| r.strip_suffix('}'))
        else {
            continue;
        };
        let Some(binary) = functions.get(sub) else {
            continue;
        };
        let Some(at) = state["ResultPath"].as_str() else {
            continue;
        };
        let output = schema(binary);
        let produced = match state.get("ResultSelector") {
            Some(selector) => {
                let mut picked = BTreeMap::new();
                for (key, v) in selector.as_object().unwrap() {
                    match (key.strip_suffix(".$"), v.as_str()) {
                        (Some(field), Some(path)) => {
                            checked += 1;
                            if !schema_has(&output, &output, &segments(path)) {
                                problems.push(format!(
                                    "{name}: ResultSelector reads {path}, not in {binary}'s output"
                                ));
                            }
                            picked.insert(field.to_string(), Some(segments(path)));
                        }
                        _ => {
                            picked.insert(key.clone(), None);
                        }
                    }
                }
                Produced::Selected(picked)
            }
            None => Produced::Whole,
        };
        let key = at.trim_start_matches("$.").to_string();
        if let Some((other, _, _)) = producers.get(&key)
            && functions.get(other.as_str()).is_some_and(|b| b != binary)
        {
            problems.push(format!(
                "{name}: {at} is written by two different functions"
            ));
        }
        producers.insert(key, (sub.to_string(), output, produced));
    }
    let mut paths = Vec::new();
    for state in states.as_object().unwrap().values() {
        let mut state = state.clone();
        // A ResultSelector reads the raw output (checked above); a Map's processor is its own
        // scope.
        if let Some(map) = state.as_object_mut() {
            map.remove("ResultSelector");
            map.remove("ItemProcessor");
        }
        read_paths(&state, &mut paths);
    }
    for path in paths {
        let segs = segments(&path);
        let Some((head, rest)) = segs.split_first() else {
            continue;
        };
        let Some((_, output, produced)) = producers.get(head) else {
            continue;
        };
        checked += 1;
        let ok = match produced {
            Produced::Whole => schema_has(output, output, rest),
            Produced::Selected(picked) => match rest.split_first() {
                None => true,
                Some((field, deeper)) => match picked.get(field) {
                    Some(Some(base)) => {
                        let full: Vec<String> = base.iter().chain(deeper).cloned().collect();
                        schema_has(output, output, &full)
                    }
                    Some(None) => deeper.is_empty(),
                    None => false,
                },
            },
        };
        if !ok {
            problems.push(format!("{path} is not in what its task produced"));
        }
    }
    checked
}

/// The first ResultSelector of `states`, looking into Maps' processors too.
fn first_selector(states: &mut Value) -> Option<&mut Value> {
    for state in states.as_object_mut()?.values_mut() {
        if state.get("ResultSelector").is_some() {
            return state.get_mut("ResultSelector");
        }
        if state["Type"] == "Map"
            && let Some(found) = first_selector(&mut state["ItemProcessor"]["States"])
        {
            return Some(found);
        }
    }
    None
}

#[test]
fn every_path_a_state_reads_exists_in_the_producing_functions_schema() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let mut total = 0;
    for (id, (path, subs)) in state_machines() {
        let mut functions = BTreeMap::new();
        for (name, value) in &subs {
            if let Some(function) = named_resource(value)
                && let Some(resource) = resources.get(function.as_str())
                && let Some(binary) = job_of(resource)
            {
                functions.insert(name.as_str().unwrap().to_string(), binary.to_string());
            }
        }
        let def = definition(&path);
        let mut problems = Vec::new();
        total += check_scope(&def["States"], &functions, &mut problems);
        assert!(problems.is_empty(), "{id}: {problems:#?}");
        // The check does judge: a field no function produces is caught.
        let mut broken = def.clone();
        let selector = first_selector(&mut broken["States"]).expect("a task with a ResultSelector");
        selector["bogus.$"] = json!("$.noSuchField");
        let mut problems = Vec::new();
        check_scope(&broken["States"], &functions, &mut problems);
        assert!(!problems.is_empty(), "{id}: a bogus path passed");
    }
    assert!(total >= 60, "only {total} paths checked");
}

// ---- running the workflows

/// A database on the shared server owned by `neondb_owner` (as on Neon), a Neon API emulator
/// whose project's main branch is a copy of it, a bucket, and the functions behind a
/// `lambda-host` that sees only what a deployed function would (its settings and references).
struct Stack {
    pg: &'static PgServer,
    db: String,
    neon: NeonEmulator,
    host: LambdaHost,
    bucket: String,
}

const SAMPLE: &str = "
CREATE TABLE customers (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers, total numeric(12,2));
INSERT INTO customers (name, email) SELECT 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 300) i;
INSERT INTO orders (customer_id, total) SELECT 1 + i % 300, (i % 97) * 1.25 FROM generate_series(1, 2000) i;
CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY 1;
";

impl Stack {
    fn start(name: &str) -> Stack {
        Stack::start_with(name, "", &[])
    }

    /// A stack whose project's main branch also holds `extra_sql`, and whose functions run with
    /// `extra_env` besides the stack's settings.
    fn start_with(name: &str, extra_sql: &str, extra_env: &[(&str, &str)]) -> Stack {
        let pg = shared_pg();
        let db = unique_name(name).replace('-', "_");
        pg.psql(
            "postgres",
            // The lock neon-emulator takes around its own role changes: emulators starting
            // at the same time on this server change the same role.
            "SELECT pg_advisory_lock(7310431); \
             DO $$ BEGIN CREATE ROLE neondb_owner LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
             SELECT pg_advisory_unlock(7310431);",
        );
        pg.psql("postgres", &format!("CREATE DATABASE {db}"));
        pg.psql(
            &db,
            &format!(
                "ALTER SCHEMA public OWNER TO neondb_owner; SET ROLE neondb_owner; {SAMPLE} {extra_sql}"
            ),
        );
        let neon = NeonEmulator::start(
            pg,
            EmulatorOptions {
                operation_delay_ms: 50,
                seed_from: Some(db.clone()),
            },
        );
        let s3 = shared_s3();
        let bucket = s3.create_bucket("wf");
        let mut env: Vec<(String, String)> = s3
            .env()
            .into_iter()
            .chain(neon.env())
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        // The import target is given without its password (as a deployed stack gives a
        // reference); the password reaches the functions as a setting, never a payload.
        env.push(("PGPASSWORD".into(), pg.password().to_string()));
        // One Neon call gives up on 423/429 quickly, so the workflows' own retries are tested.
        env.push(("FERRY_NEON_RETRY_SECONDS".into(), "1".into()));
        // The convention (imports/<schema>.<table>/) routes only into allowed tables.
        env.push(("FERRY_IMPORT_ALLOW".into(), "public.customers".into()));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let host = LambdaHost::start(&env);
        Stack {
            pg,
            db,
            neon,
            host,
            bucket,
        }
    }

    /// The test database, as the import workflow's target: no password in it.
    fn target(&self) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{}?sslmode=disable",
            self.pg.port, self.db
        )
    }

    async fn store(&self) -> Store {
        let url = ObjectUrl::parse(&format!("s3://{}/", self.bucket)).unwrap();
        Store::for_url(&url, &shared_s3().store_config())
            .await
            .unwrap()
    }

    async fn put(&self, key: &str, body: impl Into<bytes::Bytes>) -> String {
        let store = self.store().await;
        store
            .put(&Key::new(key).unwrap(), body.into())
            .await
            .unwrap()
            .etag
            .unwrap_or_default()
    }

    async fn exists(&self, key: &str) -> bool {
        let store = self.store().await;
        store.head(&Key::new(key).unwrap()).await.is_ok()
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let store = self.store().await;
        store
            .list(&Key::prefix(prefix).unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key.as_str().to_string())
            .collect()
    }

    /// A snapshot of the test database in the bucket (the seed of preview branches).
    async fn seed(&self, prefix: &str) -> (String, String) {
        let out = ferry::jobs::snapshot(
            ferry::jobs::SnapshotInput {
                source: self.pg.url(&self.db),
                to: format!("s3://{}/{prefix}", self.bucket),
                checksums: true,
                ..Default::default()
            },
            context(shared_s3().store_config()),
        )
        .await
        .unwrap();
        (out.archive, out.manifest)
    }

    /// Runs a state machine of the template; the run's report (status, output or error, states
    /// entered, retries, notifications, every state's input and output).
    fn run(&self, machine: &str, input: Value) -> Value {
        self.run_with(machine, input, &[])
    }

    /// [`Stack::run`] with template parameters (`Name=Value`) over their defaults.
    fn run_with(&self, machine: &str, input: Value, parameters: &[&str]) -> Value {
        let mut command = Command::new(repo().join("infra/local/run-workflow"));
        for parameter in parameters {
            command.args(["--parameter", parameter]);
        }
        let out = command
            .args(["--template"])
            .arg(repo().join("infra/template.yaml"))
            .args(["--state-machine", machine])
            .args(["--input", &input.to_string()])
            .args(["--lambda-host", &self.host.url])
            .args(["--retry-interval-ms", "20", "--trace", "true"])
            .args(["--parameter", &format!("ImportTarget={}", self.target())])
            .output()
            .expect("run-workflow");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "run-workflow printed no report ({e}): {stdout}\n{}\nfunctions:\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&self.host.log).unwrap_or_default()
            )
        });
        assert_eq!(
            out.status.success(),
            report["status"] == "SUCCEEDED",
            "exit status and report disagree: {report}"
        );
        // No state's input or output, no notification carries a secret.
        let text = report.to_string();
        for (what, secret) in [
            ("the server's password", self.pg.password().to_string()),
            ("the Neon API key", self.neon.api_key.clone()),
            ("the S3 secret key", shared_s3().secret_key.clone()),
            (
                "the branch role's password",
                format!("role-{}", self.pg.password()),
            ),
        ] {
            assert!(!text.contains(&secret), "{what} is in the workflow's data");
        }
        report
    }

    fn functions_log(&self) -> String {
        std::fs::read_to_string(&self.host.log).unwrap_or_default()
    }

    async fn branch_names(&self) -> Vec<String> {
        self.neon
            .client()
            .list_branches(&self.neon.project_id)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect()
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        self.pg.psql(db, sql).trim().to_string()
    }
}

fn states(report: &Value) -> Vec<&str> {
    report["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn preview_branch_restores_a_seed_validates_and_runs_again_for_the_same_branch() {
    let stack = Stack::start("wf_preview");
    let (archive, manifest) = stack.seed("seeds/app/").await;
    let input = json!({"project": stack.neon.project_id, "branch": "preview-pr-7", "seed": archive,
                       "seedManifest": manifest, "expiresIn": "1d", "database": "app"});
    let report = stack.run("PreviewBranchStateMachine", input.clone());
    assert_eq!(
        report["status"],
        "SUCCEEDED",
        "{report:#}\n{}",
        stack.functions_log()
    );
    let out = &report["output"];
    assert_eq!(out["created"], true);
    assert_eq!(out["restored"], true);
    assert_eq!(out["validated"], true);
    assert_eq!(out["database"], "app");
    // One event out, on success: what ran, with what, and how it ended.
    let events = report["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["Source"], "ferry");
    assert_eq!(events[0]["DetailType"], "ferry workflow succeeded");
    assert_eq!(events[0]["Detail"]["workflow"], "preview-branch");
    assert_eq!(events[0]["Detail"]["input"], input);
    assert_eq!(
        events[0]["Detail"]["state"]["validated"], true,
        "{events:?}"
    );
    assert_eq!(out["rows"], 2300 + 300);
    let branch_id = out["branchId"].as_str().unwrap();
    assert!(branch_id.starts_with("br-"), "{out}");
    assert_eq!(
        out["connection"],
        format!(
            "neon://{}/{branch_id}/app?role=neondb_owner",
            stack.neon.project_id
        )
    );
    assert!(out["host"].as_str().is_some_and(|h| !h.is_empty()), "{out}");
    assert!(out["expiresAt"].as_str().is_some(), "{out}");
    assert!(stack.branch_names().await.contains(&"preview-pr-7".into()));

    // CI runs again for the same pull request: the same branch, found seeded, validated.
    let again = stack.run("PreviewBranchStateMachine", input);
    assert_eq!(again["status"], "SUCCEEDED", "{again:#}");
    assert_eq!(again["output"]["branchId"], branch_id);
    assert_eq!(again["output"]["created"], false);
    assert_eq!(again["output"]["restored"], false);
    assert_eq!(again["output"]["validated"], true);
    assert!(states(&again).contains(&"SeededBefore"), "{again:#}");
}

#[tokio::test]
async fn preview_branch_that_does_not_validate_is_deleted_and_notified() {
    let stack = Stack::start("wf_mismatch");
    let (archive, _) = stack.seed("seeds/app/").await;
    // A manifest of something else: the database changed after this one was taken.
    stack.sql(&stack.db, "DELETE FROM orders WHERE id <= 5");
    let (_, other_manifest) = stack.seed("seeds/changed/").await;
    let report = stack.run(
        "PreviewBranchStateMachine",
        json!({"project": stack.neon.project_id, "branch": "preview-bad", "seed": archive,
               "seedManifest": other_manifest}),
    );
    assert_eq!(report["status"], "FAILED", "{report:#}");
    assert_eq!(report["error"], "Ferry.WorkflowFailed");
    let visited = states(&report);
    for state in [
        "ValidateSeed",
        "CleanUp",
        "DeleteBranch",
        "NotifyFailure",
        "Failed",
    ] {
        assert!(visited.contains(&state), "{state} not in {visited:?}");
    }
    let notes = report["notifications"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{report:#}");
    assert_eq!(notes[0]["subject"], "ferry preview-branch failed");
    assert!(
        notes[0]["topicArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:sns:")
    );
    assert_eq!(
        notes[0]["message"]["error"]["Error"],
        "Ferry.ValidationFailed"
    );
    assert!(
        notes[0]["message"]["error"]["Cause"]
            .as_str()
            .unwrap()
            .contains("orders"),
        "{notes:?}"
    );
    // Compensation: the branch this run created is gone.
    assert!(!stack.branch_names().await.contains(&"preview-bad".into()));
}

#[tokio::test]
async fn preview_branch_rides_out_a_423_storm_and_gives_up_on_an_endless_one() {
    let stack = Stack::start("wf_locked");
    let (archive, manifest) = stack.seed("seeds/app/").await;
    let input = |branch: &str| {
        json!({"project": stack.neon.project_id, "branch": branch, "seed": archive,
               "seedManifest": manifest})
    };
    // A storm longer than one call's retry budget: the state's Retry rides it out.
    stack
        .neon
        .faults(json!({"http": {"status": 423, "times": 6}}))
        .await;
    let report = stack.run("PreviewBranchStateMachine", input("preview-storm"));
    assert_eq!(
        report["status"],
        "SUCCEEDED",
        "{report:#}\n{}",
        stack.functions_log()
    );
    assert!(
        report["retries"]
            .as_array()
            .unwrap()
            .contains(&json!("CreateBranch")),
        "{report:#}"
    );
    assert_eq!(report["output"]["validated"], true);

    // A storm that outlasts every retry: the run fails, notifies, and leaves no branch.
    stack
        .neon
        .faults(json!({"http": {"status": 423, "times": 100000}}))
        .await;
    let report = stack.run("PreviewBranchStateMachine", input("preview-endless"));
    stack
        .neon
        .raw(
            reqwest::Method::DELETE,
            "/_emulator/faults",
            None,
            Some(&stack.neon.api_key),
        )
        .await;
    assert_eq!(report["status"], "FAILED", "{report:#}");
    let notes = report["notifications"].as_array().unwrap();
    assert_eq!(notes[0]["message"]["error"]["Error"], "Ferry.NeonLocked");
    assert!(
        report["retries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| *r == "CreateBranch")
            .count()
            >= 6,
        "{report:#}"
    );
    assert!(
        !stack
            .branch_names()
            .await
            .contains(&"preview-endless".into())
    );
}

#[tokio::test]
async fn backup_snapshots_each_database_from_a_temporary_branch_and_one_failing_loses_nothing() {
    let stack = Stack::start("wf_backup");
    let to = format!("s3://{}/backups/", stack.bucket);
    let report = stack.run(
        "BackupStateMachine",
        json!({"project": stack.neon.project_id, "to": to, "retention": {"keepLast": 2}}),
    );
    assert_eq!(
        report["status"],
        "SUCCEEDED",
        "{report:#}\n{}",
        stack.functions_log()
    );
    let done = &report["output"]["databases"][0];
    assert_eq!(done["database"], "neondb");
    assert_eq!(done["failed"], false);
    assert_eq!(done["validated"], true);
    // Rows of the tables and of the materialized view, as the manifest records them.
    assert_eq!(done["rows"], 2600);
    let manifest = done["manifest"].as_str().unwrap();
    assert!(
        manifest.starts_with(&format!("{to}neondb/")) && manifest.ends_with("/manifest.json"),
        "{manifest}"
    );
    let key = manifest.trim_start_matches(&format!("s3://{}/", stack.bucket));
    assert!(stack.exists(key).await, "{key} is not in the bucket");
    let archive = done["archive"].as_str().unwrap();
    assert!(
        stack
            .exists(archive.trim_start_matches(&format!("s3://{}/", stack.bucket)))
            .await
    );
    // The temporary branch is gone; the project's branches are as before.
    let branches = stack.branch_names().await;
    assert!(
        !branches.iter().any(|b| b.starts_with("ferry-backup-")),
        "{branches:?}"
    );

    // Two databases, one of which does not exist: the other is backed up all the same, the
    // run fails naming the missing one, and the temporary branch is removed.
    let report = stack.run(
        "BackupStateMachine",
        json!({"project": stack.neon.project_id, "to": to, "databases": ["neondb", "nope"],
               "retention": {"keepLast": 1}}),
    );
    assert_eq!(report["status"], "FAILED", "{report:#}");
    let notes = report["notifications"].as_array().unwrap();
    let error = &notes[0]["message"]["error"];
    assert_eq!(error["Error"], "Ferry.SomeDatabasesFailed", "{notes:?}");
    assert!(error["Cause"].as_str().unwrap().contains("nope"), "{error}");
    let manifests: Vec<String> = stack
        .keys("backups/neondb/")
        .await
        .into_iter()
        .filter(|k| k.ends_with("manifest.json"))
        .collect();
    // Nothing was pruned by a run that failed.
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    assert!(stack.keys("backups/nope/").await.is_empty());
    let branches = stack.branch_names().await;
    assert!(
        !branches.iter().any(|b| b.starts_with("ferry-backup-")),
        "{branches:?}"
    );

    // A good run with a policy of one: the two older snapshots are pruned, whole.
    let report = stack.run(
        "BackupStateMachine",
        json!({"project": stack.neon.project_id, "to": to, "retention": {"keepLast": 1}}),
    );
    assert_eq!(report["status"], "SUCCEEDED", "{report:#}");
    assert_eq!(
        report["output"]["pruned"].as_array().unwrap().len(),
        2,
        "{report:#}"
    );
    let left = stack.keys("backups/neondb/").await;
    assert_eq!(left.len(), 2, "{left:?}");
    let newest = report["output"]["databases"][0]["manifest"]
        .as_str()
        .unwrap();
    assert!(
        left.iter().any(|k| newest.ends_with(k.as_str())),
        "{left:?}"
    );
}

/// `distribute`: the database's tables fan out over three workers in a Map, a large table
/// split into pieces. Every invocation keeps back its whole time (FERRY_DEADLINE_MARGIN_SECONDS
/// equal to the functions' timeout), so each worker stops after one piece and the workflow
/// runs it again until it is done; the finish joins the pieces and the archive validates.
#[tokio::test]
async fn backup_in_pieces_fans_a_database_out_over_workers_that_resume() {
    let stack = Stack::start_with(
        "wf_pieces",
        "CREATE TABLE events (id int PRIMARY KEY, body text); \
         INSERT INTO events SELECT i, md5(i::text) || repeat('x', 80) FROM generate_series(1, 30000) i; \
         ANALYZE events;",
        &[("FERRY_DEADLINE_MARGIN_SECONDS", "900")],
    );
    let to = format!("s3://{}/pieces/", stack.bucket);
    let report = stack.run(
        "BackupStateMachine",
        json!({"project": stack.neon.project_id, "to": to,
               "distribute": {"workers": 3, "pieceBytes": 8192 * 64}}),
    );
    assert_eq!(
        report["status"],
        "SUCCEEDED",
        "{report:#}\n{}",
        stack.functions_log()
    );
    let entered = states(&report);
    for state in [
        "Plan",
        "Workers",
        "Pieces",
        "MorePieces",
        "Finish",
        "Validate",
    ] {
        assert!(entered.contains(&state), "{state} not entered: {entered:?}");
    }
    assert!(!entered.contains(&"Snapshot"), "{entered:?}");
    // Each worker ran once per piece: more Pieces invocations than workers.
    let pieces = entered.iter().filter(|s| **s == "Pieces").count();
    assert!(pieces > 3, "{pieces} invocations of Pieces: {entered:?}");
    let done = &report["output"]["databases"][0];
    assert_eq!(done["failed"], false, "{done}");
    assert_eq!(done["validated"], true);
    assert_eq!(done["rows"], 2600 + 30000);
    let archive = done["archive"].as_str().unwrap();
    assert!(archive.ends_with("/archive/"), "{archive}");
    let prefix = archive
        .trim_start_matches(&format!("s3://{}/", stack.bucket))
        .trim_end_matches("archive/");
    let keys = stack.keys(prefix).await;
    assert!(
        !keys.iter().any(|k| k.contains("/pieces/")),
        "pieces are removed: {keys:?}"
    );
    let manifest: ferry::manifest::Manifest = serde_json::from_slice(
        &stack
            .store()
            .await
            .get_bytes(&Key::new(format!("{prefix}manifest.json")).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        manifest.objects.iter().any(|o| o.parts.len() > 2),
        "a split table: {:?}",
        manifest.objects
    );
    let branches = stack.branch_names().await;
    assert!(
        !branches.iter().any(|b| b.starts_with("ferry-backup-")),
        "{branches:?}"
    );

    // The same backup with each worker allowed one invocation: the workers still in progress
    // stop with a clear error instead of being invoked again and again.
    let bounded = stack.run_with(
        "BackupStateMachine",
        json!({"project": stack.neon.project_id, "to": to,
               "distribute": {"workers": 3, "pieceBytes": 8192 * 64}}),
        &["MaxPieceRounds=1"],
    );
    assert_eq!(bounded["status"], "FAILED", "{bounded:#}");
    let notified = &bounded["notifications"][0]["message"]["error"];
    assert_eq!(
        notified["Error"], "Ferry.SomeDatabasesFailed",
        "{bounded:#}"
    );
    let databases: Value = serde_json::from_str(notified["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(databases[0]["failed"], true, "{databases}");
    assert_eq!(
        databases[0]["error"]["Error"], "Ferry.TooManyRounds",
        "{databases}"
    );
    let rounds = states(&bounded).iter().filter(|s| **s == "Pieces").count();
    assert!(
        rounds <= 3,
        "{rounds} invocations of Pieces with one allowed per worker"
    );
}

#[tokio::test]
async fn csv_import_processes_an_upload_and_sets_a_malformed_file_aside() {
    let stack = Stack::start("wf_csv");
    let key = "imports/public.customers/new customers.csv";
    let etag = stack
        .put(
            key,
            "email,name\nada@example.com,Ada Lovelace\n\"grace@example.com\",\"Hopper, Grace\"\n",
        )
        .await;
    let report = stack.run(
        "CsvImportStateMachine",
        crate::import::eventbridge(&stack.bucket, key, &etag),
    );
    assert_eq!(
        report["status"],
        "SUCCEEDED",
        "{report:#}\n{}",
        stack.functions_log()
    );
    let out = &report["output"];
    assert_eq!(out["rowsLoaded"], 2);
    assert_eq!(out["validated"], true);
    assert_eq!(out["table"], "\"public\".\"customers\"");
    assert_eq!(
        out["movedTo"],
        format!("s3://{}/processed/{key}", stack.bucket)
    );
    assert!(!stack.exists(key).await);
    assert!(stack.exists(&format!("processed/{key}")).await);
    assert_eq!(
        stack.sql(
            &stack.db,
            "SELECT name FROM customers WHERE email = 'grace@example.com'"
        ),
        "Hopper, Grace"
    );

    // A malformed file: nothing imported, the file moved aside with a report, a notification.
    let bad = "imports/public.customers/broken.csv";
    let etag = stack
        .put(bad, "email,name\nx@example.com,\"never closed\n")
        .await;
    let report = stack.run(
        "CsvImportStateMachine",
        crate::import::eventbridge(&stack.bucket, bad, &etag),
    );
    assert_eq!(report["status"], "FAILED", "{report:#}");
    assert_eq!(report["error"], "Ferry.ImportRejected");
    let events = report["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["DetailType"], "ferry workflow failed");
    assert_eq!(events[0]["Detail"]["workflow"], "csv-import");
    assert_eq!(events[0]["Detail"]["status"], "FAILED");
    let notes = report["notifications"].as_array().unwrap();
    assert_eq!(notes[0]["subject"], "ferry csv-import rejected a file");
    assert!(
        notes[0]["message"]["error"]["Cause"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{notes:?}"
    );
    assert!(!stack.exists(bad).await);
    assert!(stack.exists(&format!("rejected/{bad}")).await);
    assert!(stack.exists(&format!("rejected/{bad}.error.json")).await);
    assert_eq!(
        stack.sql(
            &stack.db,
            "SELECT count(*) FROM customers WHERE email = 'x@example.com'"
        ),
        "0"
    );
}

/// A batch of objects already in the bucket (a backfill) fans out in a Map: each is imported,
/// validated and moved on its own; a malformed one is set aside and notified without losing
/// the others, and the run fails at the end.
#[tokio::test]
async fn csv_import_of_a_batch_fans_out_and_one_bad_file_loses_no_other() {
    let stack = Stack::start("wf_csv_batch");
    let files = [
        (
            "imports/public.customers/part 1.csv",
            "email,name\nb1@example.com,One\nb2@example.com,Two\n",
        ),
        (
            "imports/public.customers/part 2.csv",
            "email,name\nb3@example.com,Three\n",
        ),
        (
            "imports/public.customers/part 3.csv",
            "email,name\nb4@example.com,\"never closed\n",
        ),
        (
            "imports/public.customers/part 4.csv",
            "email,name\nb5@example.com,Five\n",
        ),
    ];
    for (key, body) in files {
        stack.put(key, body).await;
    }
    let objects: Vec<Value> = files
        .iter()
        .map(|(key, _)| json!({"bucket": stack.bucket, "key": key}))
        .collect();
    let report = stack.run("CsvImportStateMachine", json!({ "objects": objects }));
    assert_eq!(
        report["status"],
        "FAILED",
        "{report:#}\n{}",
        stack.functions_log()
    );
    assert_eq!(report["error"], "Ferry.SomeImportsFailed", "{report:#}");
    let entered = states(&report);
    assert!(entered.contains(&"Uploads"), "{entered:?}");
    assert_eq!(
        stack.sql(
            &stack.db,
            "SELECT string_agg(name, ',' ORDER BY email) FROM customers WHERE email LIKE 'b_@example.com'"
        ),
        "One,Two,Three,Five"
    );
    for (i, (key, _)) in files.iter().enumerate() {
        assert!(!stack.exists(key).await, "{key} is still there");
        let moved = if i == 2 { "rejected" } else { "processed" };
        assert!(
            stack.exists(&format!("{moved}/{key}")).await,
            "{key} not under {moved}/"
        );
    }
    let notes = report["notifications"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["subject"], "ferry csv-import rejected a file");
    assert!(
        notes[0]["message"]["source"]
            .as_str()
            .unwrap()
            .ends_with("part%203.csv")
            || notes[0]["message"]["source"]
                .as_str()
                .unwrap()
                .ends_with("part 3.csv"),
        "{notes:?}"
    );

    // The same objects again (now under processed/ and rejected/, so not found): a batch of
    // good files succeeds.
    let key = "imports/public.customers/part 5.csv";
    stack.put(key, "email,name\nb6@example.com,Six\n").await;
    let report = stack.run(
        "CsvImportStateMachine",
        json!({"objects": [{"bucket": stack.bucket, "key": key}]}),
    );
    assert_eq!(report["status"], "SUCCEEDED", "{report:#}");
    assert_eq!(
        report["output"]["imports"][0]["rowsLoaded"], 1,
        "{report:#}"
    );
    assert_eq!(report["output"]["imports"][0]["failed"], false);
}

#[tokio::test]
async fn migrate_loads_real_pg_dump_archives_into_new_branches_and_validates_them() {
    let stack = Stack::start("wf_migrate");
    let dir = tempfile::tempdir().unwrap();
    for (format, branch) in [("c", "migrated-custom"), ("p", "migrated-plain")] {
        let file = dir.path().join(format!("app.{format}"));
        let out = Command::new(stack.pg.bin("pg_dump"))
            .args(["-F", format, "--no-owner", "-f"])
            .arg(&file)
            .arg(stack.pg.url(&stack.db))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = format!("migrations/app.{format}");
        stack.put(&key, std::fs::read(&file).unwrap()).await;
        let report = stack.run(
            "MigrateStateMachine",
            json!({"project": stack.neon.project_id, "branch": branch,
                   "from": format!("s3://{}/{key}", stack.bucket), "database": "app"}),
        );
        assert_eq!(
            report["status"],
            "SUCCEEDED",
            "{format}: {report:#}\n{}",
            stack.functions_log()
        );
        let out = &report["output"];
        assert_eq!(out["validated"], true);
        assert_eq!(out["created"], true);
        assert_eq!(out["rows"], 2300);
        assert!(stack.branch_names().await.contains(&branch.to_string()));
    }

    // Not an archive: the branch this run made is removed, the failure notified.
    stack
        .put(
            "migrations/garbage.dump",
            b"PGDMP this is not an archive".to_vec(),
        )
        .await;
    let report = stack.run(
        "MigrateStateMachine",
        json!({"project": stack.neon.project_id, "branch": "migrated-garbage",
               "from": format!("s3://{}/migrations/garbage.dump", stack.bucket)}),
    );
    assert_eq!(report["status"], "FAILED", "{report:#}");
    let visited = states(&report);
    assert!(visited.contains(&"DeleteBranch"), "{visited:?}");
    assert_eq!(
        report["notifications"][0]["message"]["error"]["Error"],
        "Ferry.BadArchive"
    );
    assert!(
        !stack
            .branch_names()
            .await
            .contains(&"migrated-garbage".into())
    );
}

/// A file imported in pieces (every invocation keeps back its whole time, so each loads one
/// batch and answers in_progress) is invoked again at most MaxImportRounds times: past that
/// the execution fails with Ferry.TooManyRounds, notified, instead of looping on; a new
/// execution for the same object goes on from where the pieces stopped and completes.
#[tokio::test]
async fn csv_import_in_pieces_is_bounded_and_resumes() {
    let stack = Stack::start_with("wf_rounds", "", &[("FERRY_DEADLINE_MARGIN_SECONDS", "900")]);
    let key = "imports/public.customers/many.csv";
    let body: String = std::iter::once("email,name\n".to_string())
        .chain((1..=70_000).map(|i| format!("bulk{i}@example.org,bulk customer number {i}\n")))
        .collect();
    assert!(body.len() > 3 * 1024 * 1024, "{} bytes", body.len());
    let etag = stack.put(key, body).await;
    let event = crate::import::eventbridge(&stack.bucket, key, &etag);
    let bounded = stack.run_with(
        "CsvImportStateMachine",
        event.clone(),
        &["MaxImportRounds=2"],
    );
    assert_eq!(bounded["status"], "FAILED", "{bounded:#}");
    let imports = states(&bounded).iter().filter(|s| **s == "Import").count();
    assert_eq!(imports, 2, "{:?}", states(&bounded));
    let notified = bounded["notifications"].to_string();
    assert!(notified.contains("Ferry.TooManyRounds"), "{notified}");
    assert!(stack.exists(key).await, "the file stays for the next run");

    let report = stack.run("CsvImportStateMachine", event);
    assert_eq!(
        report["status"],
        "SUCCEEDED",
        "{report:#}\n{}",
        stack.functions_log()
    );
    assert_eq!(
        stack.sql(
            &stack.db,
            "SELECT count(*), count(DISTINCT email) FROM customers WHERE email LIKE 'bulk%'"
        ),
        "70000|70000"
    );
}
