//! The template's IAM policies as AWS enforces them: each function's S3 statements, read from
//! `infra/template.yaml` with its parameters' defaults, become the only permissions of an IAM
//! user of a moto server that checks every request (IAM authentication and authorization on),
//! and the function's job runs with that user's keys: what it needs must be allowed (a missing
//! permission fails the job), and what it does not need must be refused (an excessive one
//! fails the checks that it is).

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command},
};

use bytes::Bytes;
use ferry::{
    import::route::CsvOptions,
    jobs::{self, ImportCsvInput, ImportRequest, ImportStatus, RestoreInput, SnapshotInput},
    secret::Secret,
    store::{Key, ObjectUrl, Store, StoreConfig},
};
use ferry_tests::shared_pg;
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

use crate::snapshot::{SMALL, context};

/// The bucket the template's `Bucket` resolves to here.
const BUCKET: &str = "ferry-iam-bucket";

fn template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A value of the template with `!Ref`, `!Sub` and `!GetAtt` resolved: parameters to their
/// defaults, `Bucket` to [`BUCKET`], other resources to an ARN of their name.
fn resolve(value: &Yaml, parameters: &BTreeMap<String, String>) -> Value {
    let reference = |name: &str| -> String {
        match name {
            "Bucket.Arn" => format!("arn:aws:s3:::{BUCKET}"),
            "Bucket" => BUCKET.to_string(),
            _ if parameters.contains_key(name) => parameters[name].clone(),
            other => format!(
                "arn:aws:secretsmanager:us-east-1:000000000000:secret:{}",
                other.trim_end_matches(".Arn")
            ),
        }
    };
    match value {
        Yaml::Tagged(tagged) => {
            let text = tagged.value.as_str().expect("a scalar intrinsic");
            match tagged.tag.to_string().as_str() {
                "!Ref" | "!GetAtt" => Value::String(reference(text)),
                "!Sub" => {
                    let mut out = String::new();
                    let mut rest = text;
                    while let Some(at) = rest.find("${") {
                        out.push_str(&rest[..at]);
                        let end = rest[at..].find('}').unwrap() + at;
                        out.push_str(&reference(&rest[at + 2..end]));
                        rest = &rest[end + 1..];
                    }
                    out.push_str(rest);
                    Value::String(out)
                }
                other => panic!("the test cannot resolve {other} in a policy"),
            }
        }
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), resolve(v, parameters)))
                .collect(),
        ),
        Yaml::Sequence(items) => {
            Value::Array(items.iter().map(|v| resolve(v, parameters)).collect())
        }
        other => serde_json::to_value(other).unwrap(),
    }
}

/// Each function's S3 statements (logical id -> statements), as deployed with the defaults.
fn s3_policies() -> BTreeMap<String, Vec<Value>> {
    let template = template();
    let parameters: BTreeMap<String, String> = template["Parameters"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter_map(|(name, p)| {
            let default = match &p["Default"] {
                Yaml::String(s) => s.clone(),
                Yaml::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((name.as_str().unwrap().to_string(), default))
        })
        .collect();
    let mut out = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        assert!(
            resource["Properties"]["Role"].is_null(),
            "{id:?} has a Role of its own: teach this test"
        );
        let mut statements = Vec::new();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            // Inline statements, or the one SAM policy template the template uses (Secrets
            // Manager reads, no S3); anything else (S3CrudPolicy, a managed policy) would
            // grant what this test does not see.
            let is_secret_read = policy.as_mapping().is_some_and(|m| {
                m.len() == 1 && m.contains_key("AWSSecretsManagerGetSecretValuePolicy")
            });
            assert!(
                is_secret_read || !policy["Statement"].is_null(),
                "{id:?}: a policy this test cannot read: {policy:?}"
            );
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let statement = resolve(statement, &parameters);
                let actions = match &statement["Action"] {
                    Value::String(a) => vec![a.clone()],
                    Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().into()).collect(),
                    other => panic!("Action {other}"),
                };
                assert!(
                    actions.iter().all(|a| a.starts_with("s3:")),
                    "{id:?}: a statement that is not about S3 ({actions:?}); teach this test"
                );
                statements.push(statement);
            }
        }
        out.insert(id.as_str().unwrap().to_string(), statements);
    }
    out
}

/// A moto server of its own, with IAM checks switched on once its users exist.
struct Enforcing {
    endpoint: String,
    keys: BTreeMap<String, (String, String)>,
    _child: Child,
}

impl Enforcing {
    fn start(policies: &BTreeMap<String, Vec<Value>>) -> Enforcing {
        let (endpoint, child) = ferry_tests::aws::start_moto("moto-iam");
        // The bucket, a user per function with exactly its statements (and an admin for the
        // test's own uploads), their keys; then every request is checked.
        let mut users = policies.clone();
        users.insert(
            "Admin".into(),
            vec![json!({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})],
        );
        let script = r#"
import boto3, json, sys, urllib.request
from botocore.config import Config
endpoint, bucket, users = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kw = dict(endpoint_url=endpoint, region_name='us-east-1',
          aws_access_key_id='testing', aws_secret_access_key='testing')
s3 = boto3.client('s3', config=Config(s3={'addressing_style': 'path'}), **kw)
s3.create_bucket(Bucket=bucket)
# Versioned, as the template's bucket is: reads and copies of a pinned version need
# s3:GetObjectVersion.
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
iam = boto3.client('iam', **kw)
keys = {}
for name, statements in users.items():
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName='template',
                            PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': statements}))
    k = iam.create_access_key(UserName=name)['AccessKey']
    keys[name] = [k['AccessKeyId'], k['SecretAccessKey']]
urllib.request.urlopen(urllib.request.Request(endpoint + '/moto-api/reset-auth', data=b'0', method='POST',
                                              headers={'Content-Type': 'text/plain'}))
print(json.dumps(keys))
"#;
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                &endpoint,
                BUCKET,
                &serde_json::to_string(&users).unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setting up moto's IAM: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys: BTreeMap<String, (String, String)> = serde_json::from_slice(&out.stdout).unwrap();
        Enforcing {
            endpoint,
            keys,
            _child: child,
        }
    }

    /// How many multipart uploads are under way in the bucket.
    fn multipart_uploads(&self) -> usize {
        let (id, secret) = &self.keys["Admin"];
        let out = Command::new("python3")
            .args([
                "-c",
                "import boto3, sys; from botocore.config import Config; \
                 c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4], \
                 config=Config(s3={'addressing_style': 'path'})); \
                 print(len(c.list_multipart_uploads(Bucket=sys.argv[2]).get('Uploads', [])))",
                &self.endpoint,
                BUCKET,
                id,
                secret,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Store settings that sign requests as `user`.
    fn store(&self, user: &str) -> StoreConfig {
        let (id, secret) = self.keys[user].clone();
        StoreConfig {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
            credentials: Some((id, Secret::new(secret))),
            ..StoreConfig::default()
        }
    }
}

async fn put(config: &StoreConfig, key: &str, body: &'static str) -> Result<(), String> {
    let url = ObjectUrl::parse(&format!("s3://{BUCKET}/{key}")).unwrap();
    let store = Store::for_url(&url, config).await.unwrap();
    store
        .put(&url.key, Bytes::from_static(body.as_bytes()))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn put_bytes(config: &StoreConfig, key: &str, body: Bytes) {
    let url = ObjectUrl::parse(&format!("s3://{BUCKET}/{key}")).unwrap();
    let store = Store::for_url(&url, config).await.unwrap();
    store.put(&url.key, body).await.unwrap();
}

/// The key of an `s3://BUCKET/...` URL.
fn archive_key(url: &str) -> String {
    url.strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap()
        .to_string()
}

async fn get(config: &StoreConfig, key: &str) -> Result<Bytes, String> {
    let url = ObjectUrl::parse(&format!("s3://{BUCKET}/{key}")).unwrap();
    let store = Store::for_url(&url, config).await.unwrap();
    store
        .get_bytes(&Key::new(key).unwrap())
        .await
        .map_err(|e| e.to_string())
}

fn denied(result: Result<impl std::fmt::Debug, String>, what: &str) {
    match result {
        Err(e) => assert!(
            e.contains("403") || e.contains("AccessDenied"),
            "{what}: failed, but not as refused: {e}"
        ),
        Ok(v) => panic!("{what}: allowed ({v:?}), but the function does not need it"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_does_its_job_with_exactly_its_template_policy() {
    let policies = s3_policies();
    for function in [
        "SnapshotFunction",
        "RestoreFunction",
        "ValidateFunction",
        "ImportCsvFunction",
    ] {
        assert!(policies.contains_key(function), "{function}: {policies:?}");
    }
    // S3 answers a HEAD or GET of a missing key with 404 only to a caller allowed
    // s3:ListBucket on the bucket (403 otherwise, and every "not there" check breaks); moto
    // does not tell the two apart, so this one is read from the policies.
    for function in [
        "SnapshotFunction",
        "RestoreFunction",
        "ValidateFunction",
        "ImportCsvFunction",
    ] {
        let lists = policies[function].iter().any(|s| {
            s["Action"] == "s3:ListBucket"
                && s["Resource"] == format!("arn:aws:s3:::{BUCKET}")
                && s.get("Condition").is_none()
        });
        assert!(
            lists,
            "{function} has no unconditional s3:ListBucket on the bucket"
        );
    }
    let aws = Enforcing::start(&policies);
    let admin = aws.store("Admin");
    let pg = shared_pg();
    let source = pg.create_database("iam_src");
    pg.psql(&source, SMALL);

    // snapshot: writes under the backup prefix, nowhere else.
    let snapshot = aws.store("SnapshotFunction");
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: format!("s3://{BUCKET}/backups/app/"),
            checksums: true,
            ..SnapshotInput::default()
        },
        context(snapshot.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("snapshot with its policy: {e}"));
    let (archive, manifest) = (out.archive, out.manifest);
    // A snapshot that fails mid-upload aborts its multipart upload (else its parts are kept,
    // and billed, until the lifecycle rule): its policy must allow that.
    let parts = StoreConfig {
        part_size: ferry::store::MIN_PART_SIZE,
        ..snapshot.clone()
    };
    let url = ObjectUrl::parse(&format!("s3://{BUCKET}/backups/app/cut.dump")).unwrap();
    let mut upload = Store::for_url(&url, &parts)
        .await
        .unwrap()
        .upload(&url.key)
        .await
        .unwrap();
    upload
        .write(Bytes::from(vec![7u8; ferry::store::MIN_PART_SIZE + 1]))
        .await
        .unwrap();
    upload.abort().await.unwrap();
    assert_eq!(aws.multipart_uploads(), 0, "the cut upload was not aborted");
    denied(
        jobs::snapshot(
            SnapshotInput {
                source: pg.url(&source),
                to: format!("s3://{BUCKET}/elsewhere/"),
                ..SnapshotInput::default()
            },
            context(snapshot.clone()),
        )
        .await
        .map_err(|e| e.to_string()),
        "snapshot outside the backup prefix",
    );

    // restore: reads the snapshot, writes nothing.
    let restore = aws.store("RestoreFunction");
    let target = pg.create_database("iam_dst");
    jobs::restore(
        RestoreInput {
            from: archive.clone(),
            target: Some(pg.url(&target)),
            jobs: Some(2),
            ..RestoreInput::default()
        },
        context(restore.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("restore with its policy: {e}"));
    denied(
        put(&restore, "backups/app/evil", "x").await,
        "restore writing",
    );
    // A seed and an external archive, where preview branches and migrations put them.
    let dump = Command::new(pg.bin("pg_dump"))
        .args(["-Fc", "-d", &pg.url(&source)])
        .output()
        .unwrap();
    assert!(dump.status.success());
    for (key, body) in [
        (
            "seeds/app/archive.dump",
            get(&admin, &archive_key(&archive)).await.unwrap(),
        ),
        (
            "seeds/app/manifest.json",
            get(&admin, &archive_key(&manifest)).await.unwrap(),
        ),
        ("migrations/heroku.dump", Bytes::from(dump.stdout)),
    ] {
        put_bytes(&admin, key, body).await;
    }
    for (n, from) in ["seeds/app/archive.dump", "migrations/heroku.dump"]
        .into_iter()
        .enumerate()
    {
        let into = pg.create_database(&format!("iam_dst{n}"));
        jobs::restore(
            RestoreInput {
                from: format!("s3://{BUCKET}/{from}"),
                target: Some(pg.url(&into)),
                ..RestoreInput::default()
            },
            context(restore.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("restore of {from} with its policy: {e}"));
    }
    put(
        &admin,
        "imports/public.drops/private.csv",
        "id,name\n9,secret\n",
    )
    .await
    .unwrap();
    denied(
        get(&restore, "imports/public.drops/private.csv").await,
        "restore reading uploads",
    );

    // validate: reads the manifest, writes nothing.
    let validate = aws.store("ValidateFunction");
    for (source, checksums) in [
        (manifest.clone(), true),
        (format!("s3://{BUCKET}/seeds/app/manifest.json"), false),
        (format!("s3://{BUCKET}/migrations/heroku.dump"), false),
    ] {
        let checked = jobs::validate(
            jobs::ValidateInput {
                source: source.clone(),
                import_report: None,
                target: pg.url(&target),
                checksums,
                jobs: Some(2),
                owners: false,
                privileges: false,
                database: false,
                save_source_manifest: None,
            },
            context(validate.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("validate against {source} with its policy: {e}"));
        assert!(checked.matches, "{source}: {checked:?}");
    }
    denied(
        put(&validate, "backups/app/evil", "x").await,
        "validate writing",
    );
    denied(
        get(&validate, "imports/public.drops/private.csv").await,
        "validate reading uploads",
    );

    // import-csv: reads uploads, moves them under processed/ and rejected/, looks keys up
    // (a missing one is "not found", which S3 says only with s3:ListBucket); reads no backup.
    let import = aws.store("ImportCsvFunction");
    pg.psql(
        &target,
        "CREATE TABLE public.drops (id int PRIMARY KEY, name text)",
    );
    put(
        &admin,
        "imports/public.drops/a.csv",
        "id,name\n1,one\n2,two\n",
    )
    .await
    .unwrap();
    let request = |key: &str, extra: ImportRequest| ImportRequest {
        from: format!("s3://{BUCKET}/{key}"),
        target: Some(pg.url(&target)),
        table: Some("public.drops".into()),
        processed_prefix: Some("processed/".into()),
        rejected_prefix: Some("rejected/".into()),
        options: CsvOptions::default(),
        ..extra
    };
    let out = jobs::import_csv(
        ImportCsvInput::Request(Box::new(request(
            "imports/public.drops/a.csv",
            ImportRequest::default(),
        ))),
        context(import.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("import with its policy: {e}"));
    assert_eq!(out.imports[0].status, ImportStatus::Imported, "{out:?}");
    assert_eq!(
        out.imports[0].moved_to.as_deref(),
        Some(format!("s3://{BUCKET}/processed/imports/public.drops/a.csv").as_str())
    );
    // Delivered again after the move: found moved (a HEAD of a missing key answered 404).
    let again = jobs::import_csv(
        ImportCsvInput::Request(Box::new(request(
            "imports/public.drops/a.csv",
            ImportRequest::default(),
        ))),
        context(import.clone()),
    )
    .await;
    let err = again.expect_err("the upload is gone");
    assert_eq!(err.error_type(), "Ferry.NotFound", "{err}");
    put(
        &admin,
        "imports/public.drops/bad.csv",
        "id,name\n1,\"open\n",
    )
    .await
    .unwrap();
    let out = jobs::import_csv(
        ImportCsvInput::Request(Box::new(request(
            "imports/public.drops/bad.csv",
            ImportRequest::default(),
        ))),
        context(import.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("a rejected import with its policy: {e}"));
    assert_eq!(out.imports[0].status, ImportStatus::Rejected, "{out:?}");
    get(&admin, "rejected/imports/public.drops/bad.csv.error.json")
        .await
        .unwrap();
    // Through the function itself, as an upload event delivers it: the table comes from an
    // ImportRoutes object under config/, read with the function's own keys.
    put(
        &admin,
        "config/routes.json",
        r#"{"rules":[{"prefix":"imports/drops/","table":"public.drops"}]}"#,
    )
    .await
    .unwrap();
    put(&admin, "imports/drops/b.csv", "id,name\n3,three\n")
        .await
        .unwrap();
    let (id, secret) = aws.keys["ImportCsvFunction"].clone();
    let env = vec![
        ("AWS_ENDPOINT_URL", aws.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", id),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1".to_string()),
        ("FERRY_S3_PATH_STYLE", "true".to_string()),
        ("FERRY_IMPORT_TARGET", pg.url(&target)),
        (
            "FERRY_IMPORT_ROUTES",
            format!("s3://{BUCKET}/config/routes.json"),
        ),
    ];
    let etag = {
        let url = ObjectUrl::parse(&format!("s3://{BUCKET}/imports/drops/b.csv")).unwrap();
        let store = Store::for_url(&url, &admin).await.unwrap();
        store.head(&url.key).await.unwrap().etag.unwrap()
    };
    let event = crate::import::eventbridge(BUCKET, "imports/drops/b.csv", &etag);
    let routed = ferry_tests::lambda::invoke(
        &ferry_tests::lambda::workspace_binary("import-csv"),
        event,
        &env,
    )
    .await;
    let out = routed
        .result
        .unwrap_or_else(|e| panic!("{e:?}\n{}", routed.logs));
    assert_eq!(out["imports"][0]["status"], "imported", "{out}");
    denied(
        get(&import, "backups/app/manifest.json").await,
        "import reading a backup",
    );
    denied(
        put(&import, "backups/app/evil", "x").await,
        "import writing a backup",
    );
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM public.drops").trim(),
        "3"
    );
}

/// The template's parameters refuse what would leak a secret or reach past a Neon compute's
/// connection limit (CloudFormation checks AllowedPattern as a Java regular expression; Python's
/// `re` reads these the same way, lookaheads included).
#[test]
fn parameters_refuse_a_password_plain_http_and_too_many_workers() {
    let template = template();
    let parameter = |name: &str| template["Parameters"][name].clone();
    let import_target = parameter("ImportTarget");
    assert_eq!(import_target["NoEcho"], Yaml::Bool(true));
    let matches = |pattern: &Yaml, values: &[&str]| -> Vec<bool> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import json, re, sys; p = sys.argv[1]; \
                 print(json.dumps([re.fullmatch(p, v) is not None for v in sys.argv[2:]]))",
                pattern.as_str().unwrap(),
            ])
            .args(values)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        matches(
            &import_target["AllowedPattern"],
            &[
                "",
                "neon://proj/main/app?role=app_owner",
                "postgres://app@db.example.com:5432/app",
                "arn:aws:secretsmanager:us-east-1:1:secret:db",
                "postgres://app:hunter2@db.example.com/app",
                "postgresql://db.example.com/app?user=app&password=hunter2",
                "postgres://app:@db.example.com/app",
            ]
        ),
        [true, true, true, true, false, false, false]
    );
    assert_eq!(
        matches(
            &parameter("NeonApiHost")["AllowedPattern"],
            &[
                "https://console.neon.tech/api/v2",
                "https://neon.internal.example",
                "http://console.neon.tech/api/v2",
                "https://user:pw@evil.example/api",
            ]
        ),
        [true, true, false, false]
    );
    assert_eq!(
        parameter("BackupWorkers")["MaxValue"],
        Yaml::Number(32.into())
    );
}
