//! The release archive and the GitHub Action, run as a user would: `dev/release` packages the
//! `ferry` command, which then runs from the archive in a clean environment (no Rust toolchain,
//! an empty HOME, nothing beside the repository); `action.yml` runs step by step as GitHub runs
//! a composite action (its expressions resolved, the inputs as `INPUT_*` too, `GITHUB_OUTPUT`,
//! `GITHUB_ENV` and `GITHUB_PATH` files between steps) against the Neon API emulator, the
//! S3-compatible server and a snapshot in it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use ferry::jobs::{self, SnapshotInput};
use ferry_tests::{process::scratch, shared_emulator, shared_pg, shared_s3, unique_name};
use serde_yaml::Value as Yaml;

use crate::snapshot::{SMALL, context};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The release archive of the debug build (`dev/release --profile dev`), made once.
fn release_archive() -> &'static PathBuf {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let out = scratch().join(unique_name("dist"));
        let run = Command::new(repo().join("dev/release"))
            .args(["--profile", "dev", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "dev/release: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        PathBuf::from(String::from_utf8(run.stdout).unwrap().trim())
    })
}

/// An environment with nothing of the build in it: system tools only, an empty HOME.
fn clean_env(command: &mut Command, home: &Path) {
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("LANG", "C.UTF-8");
}

#[test]
fn the_release_archive_runs_in_a_clean_environment() {
    let archive = release_archive();
    let name = archive.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(&format!("ferry-{}-", ferry::VERSION))
            && name.ends_with("-x86_64-unknown-linux-gnu.tar.gz"),
        "{name}"
    );
    // The checksum beside it is the archive's.
    let check = Command::new("sha256sum")
        .args(["--check", "--status"])
        .arg(format!("{name}.sha256"))
        .current_dir(archive.parent().unwrap())
        .status()
        .unwrap();
    assert!(check.success(), "{name}.sha256 does not match");
    let root = scratch().join(unique_name("unpacked"));
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(&root)
        .status()
        .unwrap();
    assert!(untar.success());
    let ferry = root.join(name.trim_end_matches(".tar.gz")).join("ferry");
    let ldd = Command::new("ldd").arg(&ferry).output().unwrap();
    let libraries = String::from_utf8_lossy(&ldd.stdout);
    assert!(
        !libraries.contains("libssl") && !libraries.contains("libcrypto"),
        "{libraries}"
    );

    let mut version = Command::new(&ferry);
    clean_env(&mut version, &home);
    let out = version.arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .unwrap();
    let commit = String::from_utf8(head.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("ferry {} (commit {})", ferry::VERSION, commit.trim())
    );

    // It does the main job: a snapshot of the local server into the S3-compatible server, and
    // a validation of the database against it.
    let pg = shared_pg();
    let source = pg.create_database("release_src");
    pg.psql(&source, SMALL);
    let s3 = shared_s3();
    let bucket = s3.create_bucket("release");
    let run = |args: &[&str]| {
        let mut command = Command::new(&ferry);
        clean_env(&mut command, &home);
        let out = command.envs(s3.env()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ferry {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let snapshot: serde_json::Value = serde_json::from_str(&run(&[
        "--json",
        "snapshot",
        "--source",
        &pg.url(&source),
        "--to",
        &format!("s3://{bucket}/release/"),
        "--checksums",
    ]))
    .unwrap();
    let manifest = snapshot["manifest"].as_str().unwrap();
    let validated = run(&[
        "validate",
        "--source",
        manifest,
        "--target",
        &pg.url(&source),
        "--checksums",
    ]);
    assert!(validated.contains("MATCH"), "{validated}");
}

/// What a composite action's expressions can see.
struct Scope<'a> {
    inputs: &'a BTreeMap<String, String>,
    steps: &'a BTreeMap<String, BTreeMap<String, String>>,
    github: &'a BTreeMap<String, String>,
}

/// Evaluates the expressions action.yml uses: `inputs.X`, `steps.ID.outputs.X`, `github.X`
/// (`github.event.number` too), `A || B` and `format('...{0}...', A)`. Anything else fails the
/// test, so that a new kind of expression in action.yml is taught here first.
fn evaluate(expression: &str, scope: &Scope) -> String {
    let expression = expression.trim();
    if let Some((left, right)) = split_or(expression) {
        let value = evaluate(left, scope);
        return if value.is_empty() {
            evaluate(right, scope)
        } else {
            value
        };
    }
    if let Some(args) = expression
        .strip_prefix("format(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (template, rest) = args
            .strip_prefix('\'')
            .and_then(|r| r.split_once("',"))
            .expect("format('...', value)");
        return template.replace("{0}", &evaluate(rest, scope));
    }
    if let Some(name) = expression.strip_prefix("inputs.") {
        return scope.inputs.get(name).cloned().unwrap_or_default();
    }
    if let Some(rest) = expression.strip_prefix("steps.") {
        let (id, name) = rest.split_once(".outputs.").expect("steps.ID.outputs.NAME");
        return scope
            .steps
            .get(id)
            .and_then(|o| o.get(name))
            .cloned()
            .unwrap_or_default();
    }
    if let Some(name) = expression.strip_prefix("github.") {
        return scope.github.get(name).cloned().unwrap_or_default();
    }
    panic!("action.yml uses an expression this test cannot evaluate: {expression}");
}

fn split_or(expression: &str) -> Option<(&str, &str)> {
    let mut depth = 0;
    let mut quoted = false;
    let bytes = expression.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b'|' if !quoted && depth == 0 && bytes.get(i + 1) == Some(&b'|') => {
                return Some((&expression[..i], &expression[i + 2..]));
            }
            _ => {}
        }
    }
    None
}

/// `text` with every `${{ ... }}` evaluated.
fn substitute(text: &str, scope: &Scope) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${{") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("}}").expect("an expression ends") + at;
        out.push_str(&evaluate(&rest[at + 3..end], scope));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The `name=value` and `name<<DELIMITER` lines of a `GITHUB_OUTPUT` or `GITHUB_ENV` file.
fn command_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delimiter {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        }
    }
    out
}

/// One run of the action: its outputs, its log (every step's output, in order), and whether
/// every step succeeded.
struct Run {
    outputs: BTreeMap<String, String>,
    log: String,
    success: bool,
}

/// Runs action.yml with `with` (the workflow's `with:`), on a runner whose job environment is
/// `env`, its tool cache at `tool_cache`.
fn run_action(with: &[(&str, &str)], env: &[(&str, String)], tool_cache: &Path) -> Run {
    let action: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("action.yml")).unwrap()).unwrap();
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let mut inputs = BTreeMap::new();
    for (name, spec) in action["inputs"].as_mapping().unwrap() {
        let name = name.as_str().unwrap().to_string();
        let given = with.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        if spec["required"].as_bool() == Some(true) {
            assert!(given.is_some(), "input {name} is required");
        }
        let default = spec["default"].as_str().unwrap_or_default();
        inputs.insert(name, given.unwrap_or(default).to_string());
    }
    for (name, _) in with {
        assert!(inputs.contains_key(*name), "action.yml has no input {name}");
    }
    let github: BTreeMap<String, String> = [
        ("event.number", "7"),
        ("action_repository", "ferry/ferry"),
        ("action_path", repo().to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let work = scratch().join(unique_name("runner"));
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env_file = work.join("env");
    let path_file = work.join("path");
    std::fs::write(&env_file, "").unwrap();
    std::fs::write(&path_file, "").unwrap();
    let mut steps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut log = String::new();
    let mut success = true;
    for (n, step) in action["runs"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(step["shell"].as_str(), Some("bash"), "step {n}");
        assert!(step["if"].is_null(), "step {n}: `if` is not evaluated here");
        let scope = Scope {
            inputs: &inputs,
            steps: &steps,
            github: &github,
        };
        let script = substitute(step["run"].as_str().unwrap(), &scope);
        let output_file = work.join(format!("output-{n}"));
        std::fs::write(&output_file, "").unwrap();
        let mut command = Command::new("bash");
        clean_env(&mut command, &home);
        // What GitHub sets, then the job's environment, then GITHUB_ENV and GITHUB_PATH of the
        // steps before, then the step's own env.
        let added_path: Vec<String> = std::fs::read_to_string(&path_file)
            .unwrap()
            .lines()
            .rev()
            .map(str::to_string)
            .collect();
        let path = added_path
            .into_iter()
            .chain(["/usr/bin".into(), "/bin".into()])
            .collect::<Vec<_>>()
            .join(":");
        command
            .env("PATH", path)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_ACTION_PATH", repo())
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_ENV", &env_file)
            .env("GITHUB_PATH", &path_file)
            .env("RUNNER_TOOL_CACHE", tool_cache)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(command_file(&env_file))
            .envs(inputs.iter().map(|(k, v)| {
                (
                    format!("INPUT_{}", k.to_uppercase().replace(' ', "_")),
                    v.clone(),
                )
            }));
        if let Some(vars) = step["env"].as_mapping() {
            for (k, v) in vars {
                command.env(k.as_str().unwrap(), substitute(v.as_str().unwrap(), &scope));
            }
        }
        // `bash --noprofile --norc -eo pipefail {0}`, stdout and stderr in one log.
        let script_file = work.join(format!("step-{n}.sh"));
        std::fs::write(&script_file, script).unwrap();
        let out = command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
            .arg("exec 2>&1; bash --noprofile --norc -eo pipefail \"$0\"")
            .arg(&script_file)
            .output()
            .unwrap();
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        if let Some(id) = step["id"].as_str() {
            steps.insert(id.to_string(), command_file(&output_file));
        }
        if !out.status.success() {
            success = false;
            break;
        }
    }
    let scope = Scope {
        inputs: &inputs,
        steps: &steps,
        github: &github,
    };
    let outputs = action["outputs"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, spec)| {
            (
                name.as_str().unwrap().to_string(),
                substitute(spec["value"].as_str().unwrap(), &scope),
            )
        })
        .collect();
    Run {
        outputs,
        log,
        success,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_seeds_a_preview_branch_reruns_and_deletes_it() {
    let archive = release_archive().clone();
    let emulator = shared_emulator();
    let pg = shared_pg();
    let s3 = shared_s3();
    let source = pg.create_database("action_src");
    pg.psql(&source, SMALL);
    let bucket = s3.create_bucket("action");
    let snapshot = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: format!("s3://{bucket}/seeds/app/"),
            checksums: true,
            ..SnapshotInput::default()
        },
        context(s3.store_config()),
    )
    .await
    .unwrap();
    let project = emulator
        .client()
        .create_project("action")
        .await
        .unwrap()
        .project
        .id;
    // As aws-actions/configure-aws-credentials and the workflow's env leave them.
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("NEON_API_HOST", emulator.url.clone()));
    let tool_cache = scratch().join(unique_name("toolcache"));
    let with = |mode: &'static str, seed: String| {
        let archive = archive.to_str().unwrap().to_string();
        let key = emulator.api_key.clone();
        let project = project.clone();
        move || -> Vec<(&'static str, String)> {
            vec![
                ("neon_api_key", key.clone()),
                ("project", project.clone()),
                ("seed", seed.clone()),
                ("mode", mode.into()),
                ("ferry_archive", archive.clone()),
            ]
        }
    };
    let inputs =
        |pairs: &[(&'static str, String)]| -> Vec<(&'static str, String)> { pairs.to_vec() };
    let run = |pairs: Vec<(&'static str, String)>| {
        let with: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_action(&with, &env, &tool_cache)
    };

    // A seeded branch for pull request 7, from the snapshot prefix (its newest snapshot).
    let first = run(inputs(
        &with("create", format!("s3://{bucket}/seeds/app/"))(),
    ));
    assert!(first.success, "{}", first.log);
    let o = &first.outputs;
    assert_eq!(o["branch"], "preview/pr-7");
    assert_eq!(o["created"], "true");
    assert_eq!(o["restored"], "true");
    assert_eq!(o["database"], "app");
    assert!(o["branch_id"].starts_with("br-"), "{o:?}");
    assert!(!o["host"].is_empty(), "{o:?}");
    assert_eq!(
        o["connection"],
        format!(
            "neon://{project}/{}/app?role={}",
            o["branch_id"],
            o["connection"].rsplit("role=").next().unwrap()
        )
    );
    // The URL works, and its password reached the log only inside its ::add-mask:: line.
    let url = &o["database_url"];
    let password = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .and_then(|userinfo| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string())
        .expect("a password in database_url");
    assert!(
        first.log.contains(&format!("::add-mask::{url}\n"))
            && first.log.contains(&format!("::add-mask::{password}\n")),
        "database_url and its password are registered as secrets:\n{}",
        first.log
    );
    // Every line that shows the password registers it; the first of them comes first.
    for line in first.log.lines().filter(|l| l.contains(&password)) {
        assert!(line.starts_with("::add-mask::"), "printed unmasked: {line}");
    }
    let psql = Command::new(pg.bin("psql"))
        .args([url.as_str(), "-Atc", "SELECT count(*) FROM public.accounts"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&psql.stdout).trim(), "100");
    assert!(first.log.contains("installed in"), "{}", first.log);

    // The same pull request again: the branch is found seeded and validated, not restored
    // twice; ferry comes from the tool cache. With the prefix, then the archive URL itself.
    for seed in [
        format!("s3://{bucket}/seeds/app/"),
        snapshot.archive.clone(),
    ] {
        let again = run(inputs(&with("create", seed)()));
        assert!(again.success, "{}", again.log);
        assert_eq!(again.outputs["created"], "false");
        assert_eq!(again.outputs["restored"], "false");
        assert_eq!(again.outputs["matches"], "true");
        assert_eq!(again.outputs["branch_id"], o["branch_id"]);
        assert!(again.log.contains("from the cache"), "{}", again.log);
        assert!(again.log.contains("validating it"), "{}", again.log);
    }

    // Written to since (the pull request's tests did): a warning by default, a failure when
    // asked for.
    pg.psql(
        &pg_database_of(url),
        "INSERT INTO public.accounts (name) VALUES ('drift')",
    );
    let drifted = run(inputs(&with("create", snapshot.archive.clone())()));
    assert!(drifted.success, "{}", drifted.log);
    assert_eq!(drifted.outputs["matches"], "false");
    assert!(drifted.log.contains("::warning::"), "{}", drifted.log);
    let mut strict = inputs(&with("create", snapshot.archive.clone())());
    strict.push(("on_drift", "fail".into()));
    let failed = run(strict);
    assert!(!failed.success, "{}", failed.log);
    assert!(
        failed.log.contains("does not match the seed"),
        "{}",
        failed.log
    );

    // A branch name without its pull request number (a push event) is refused, not shared.
    let mut nameless = inputs(&with("create", snapshot.archive.clone())());
    nameless.push(("branch", "preview/pr-".into()));
    let refused = run(nameless);
    assert!(!refused.success);
    assert!(refused.log.contains("is incomplete"), "{}", refused.log);

    // Masking is not built: asking for it fails, saying so.
    let mut masked = inputs(&with("create", snapshot.archive.clone())());
    masked.push(("mask", "rules.json".into()));
    let refused = run(masked);
    assert!(!refused.success);
    assert!(refused.log.contains("not built yet"), "{}", refused.log);

    // Delete, twice: the second finds nothing to delete and succeeds.
    for expected in ["true", "false"] {
        let deleted = run(inputs(&with("delete", String::new())()));
        assert!(deleted.success, "{}", deleted.log);
        let names: Vec<String> = emulator
            .client()
            .list_branches(&project)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert!(!names.contains(&"preview/pr-7".to_string()), "{names:?}");
        assert_eq!(deleted.outputs["deleted"], expected, "{}", deleted.log);
    }
}

/// The database name in a PostgreSQL URL.
fn pg_database_of(url: &str) -> String {
    url.rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string()
}

/// The GitLab template's hidden jobs, run as a GitLab runner would run a job extending them:
/// their variables (expanded, under the project's CI/CD variables), `before_script` and
/// `script` in one bash with `-eo pipefail`, the dotenv report read back.
fn run_gitlab_job(job: &str, project_variables: &[(&str, String)], dir: &Path) -> (bool, String) {
    let template: Yaml = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("ci/gitlab-preview-branch.yml")).unwrap(),
    )
    .unwrap();
    // `extends`: the parent's keys, then the job's own (variables merged).
    let mut variables: Vec<(String, String)> = Vec::new();
    let mut chain = vec![template[job].clone()];
    while let Some(parent) = chain.last().unwrap()["extends"].as_str() {
        chain.push(template[parent].clone());
    }
    let lines = |key: &str| -> Vec<String> {
        chain
            .iter()
            .find_map(|j| j[key].as_sequence().cloned())
            .unwrap_or_default()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    for j in chain.iter().rev() {
        for (k, v) in j["variables"].as_mapping().into_iter().flatten() {
            let k = k.as_str().unwrap().to_string();
            variables.retain(|(name, _)| *name != k);
            variables.push((k, v.as_str().unwrap().to_string()));
        }
    }
    let predefined = [("CI_MERGE_REQUEST_IID", "12".to_string())];
    // Project variables win over the file's; the file's may refer to both.
    let known: BTreeMap<String, String> = predefined
        .iter()
        .chain(project_variables)
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let expand = |value: &str| -> String {
        let mut out = value.to_string();
        for (k, v) in &known {
            out = out.replace(&format!("${k}"), v);
        }
        out
    };
    let mut command = Command::new("bash");
    clean_env(&mut command, &dir.join("home"));
    std::fs::create_dir_all(dir.join("home")).unwrap();
    for (k, v) in &variables {
        command.env(k, expand(v));
    }
    command.envs(known.iter());
    let script = [lines("before_script"), lines("script")]
        .concat()
        .join("\n");
    let out = command
        .current_dir(dir)
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
        .arg(format!("exec 2>&1\n{script}"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_template_seeds_and_deletes_a_preview_branch() {
    let archive = release_archive().clone();
    let emulator = shared_emulator();
    let pg = shared_pg();
    let s3 = shared_s3();
    let source = pg.create_database("gitlab_src");
    pg.psql(&source, SMALL);
    let bucket = s3.create_bucket("gitlab");
    jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: format!("s3://{bucket}/seeds/app/"),
            checksums: true,
            ..SnapshotInput::default()
        },
        context(s3.store_config()),
    )
    .await
    .unwrap();
    let project = emulator
        .client()
        .create_project("gitlab")
        .await
        .unwrap()
        .project
        .id;
    let mut variables: Vec<(&str, String)> = s3.env();
    variables.extend([
        ("NEON_API_KEY", emulator.api_key.clone()),
        ("NEON_API_HOST", emulator.url.clone()),
        ("FERRY_PROJECT", project.clone()),
        ("FERRY_SEED", format!("s3://{bucket}/seeds/app/")),
        ("FERRY_ARCHIVE", archive.to_str().unwrap().to_string()),
        (
            "FERRY_SCRIPTS",
            repo().join("ci").to_str().unwrap().to_string(),
        ),
        (
            "FERRY_CACHE",
            scratch()
                .join(unique_name("gitlab-cache"))
                .to_str()
                .unwrap()
                .to_string(),
        ),
    ]);
    let dir = scratch().join(unique_name("gitlab-job"));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, log) = run_gitlab_job(".ferry-preview", &variables, &dir);
    assert!(ok, "{log}");
    let report = command_file(&dir.join("preview.env"));
    assert_eq!(report["PREVIEW_BRANCH"], "preview/mr-12", "{report:?}");
    assert_eq!(report["PREVIEW_RESTORED"], "true");
    assert!(
        report["PREVIEW_CONNECTION"].starts_with("neon://"),
        "{report:?}"
    );
    assert!(!report.contains_key("PREVIEW_DATABASE_URL"), "{report:?}");
    let text = std::fs::read_to_string(dir.join("preview.env")).unwrap()
        + &std::fs::read_to_string(dir.join("preview.out")).unwrap()
        + &log;
    assert!(
        !text.contains("postgres://"),
        "a connection URL reached the job: {text}"
    );

    let dir = scratch().join(unique_name("gitlab-stop"));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, log) = run_gitlab_job(".ferry-preview-delete", &variables, &dir);
    assert!(ok, "{log}");
    assert_eq!(
        command_file(&dir.join("preview.env"))["PREVIEW_DELETED"],
        "true"
    );
}
