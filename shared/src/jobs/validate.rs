//! Validate: compare a source (a database, or a snapshot's manifest) with a target database.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use super::{Context, ImportCsvOutput, ImportStatus, JobError};
use crate::{
    import::{self, TableName},
    manifest::Manifest,
    store::{ObjectUrl, Store},
    validate::{self, Difference, Expected, Options, Problem},
};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidateInput {
    /// A database (URL, Secrets Manager or `neon://` reference), a snapshot's `manifest.json`
    /// (`s3://...` or `file:///...`), a CSV import's report (the output of `import-csv` as
    /// JSON text or the URL of a JSON object holding it), or an archive without a manifest
    /// (a pg_dump custom or directory archive or plain dump: row counts are compared).
    /// Not with `importReport`.
    #[serde(default)]
    pub source: String,
    /// A CSV import's report as a JSON object (what `import-csv` answered), instead of
    /// `source`: how a workflow hands it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_report: Option<Box<ImportCsvOutput>>,
    /// The database to check (URL, Secrets Manager or `neon://` reference).
    pub target: String,
    /// Compare per-table content checksums as well as counts, schema and integrity.
    #[serde(default)]
    pub checksums: bool,
    /// Connections per database used at once (default 2).
    #[serde(default)]
    pub jobs: Option<u32>,
    /// Compare who owns each object (left out by default: a restore with `--no-owner`, the
    /// default for Neon targets, gives everything to the restoring role).
    #[serde(default)]
    pub owners: bool,
    /// Compare grants and default privileges (left out by default: a restore with
    /// `--no-privileges`, the default for Neon targets, does not carry them).
    #[serde(default)]
    pub privileges: bool,
    /// Compare the database's own settings (`ALTER DATABASE ... SET`, `ALTER ROLE ... IN
    /// DATABASE ... SET`), comment, connection limit and grants (left out by default: only a
    /// restore that creates the database, `pg_restore -C`, carries them).
    #[serde(default)]
    pub database: bool,
    /// Also write the source database's profile as a `manifest.json` at this location, to
    /// validate against later (after the source has moved on, or from another network).
    #[serde(default)]
    pub save_source_manifest: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateOutput {
    /// True when nothing differs and the target has no integrity problem of its own.
    pub matches: bool,
    pub checksums: bool,
    pub tables_compared: usize,
    pub rows_compared: u64,
    pub source_fingerprint: Option<String>,
    pub target_fingerprint: String,
    /// Every difference, naming the object, the expected and the actual value.
    pub differences: Vec<Difference>,
    /// Integrity problems of the target that the source did not have.
    pub integrity: Vec<Problem>,
    /// Integrity problems the source has too (reported, not failures).
    pub inherited: Vec<Problem>,
    /// What was not compared, and how to have it compared.
    #[serde(default)]
    pub not_compared: Vec<String>,
}

impl ValidateOutput {
    /// One line per finding, for people and for error messages.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "{}: {} tables, {} rows compared{}",
            if self.matches { "MATCH" } else { "DIFFERENT" },
            self.tables_compared,
            self.rows_compared,
            if self.checksums {
                " with checksums"
            } else {
                ""
            }
        )];
        // Names, comments and definitions are the database's: a line break or an escape in
        // one must not forge a line of the report.
        let shown = |text: &str| text.escape_debug().to_string();
        for d in &self.differences {
            lines.push(format!(
                "  {:<9} {}: expected {}, actual {}",
                d.check,
                shown(&d.object),
                d.expected.as_deref().map_or("nothing".into(), shown),
                d.actual.as_deref().map_or("nothing".into(), shown)
            ));
        }
        for p in &self.integrity {
            lines.push(format!(
                "  {:<9} {}: {} ({})",
                "integrity", p.object, p.detail, p.check
            ));
        }
        for p in &self.inherited {
            lines.push(format!(
                "  note      {}: {} ({}, also in the source)",
                p.object, p.detail, p.check
            ));
        }
        if !self.not_compared.is_empty() {
            lines.push(format!("  not compared: {}", self.not_compared.join("; ")));
        }
        lines.join("\n")
    }
}

/// Compares and reports; a mismatch is a report with `matches: false`, not an error.
pub async fn validate(input: ValidateInput, ctx: Context) -> Result<ValidateOutput, JobError> {
    let options = Options {
        checksums: input.checksums,
        jobs: input.jobs.unwrap_or(2).clamp(1, 64) as usize,
    };
    let target_config = super::database(&input.target).await?.direct();
    match (&input.import_report, input.source.is_empty()) {
        (Some(report), true) => {
            return validate_import((**report).clone(), &target_config, &input).await;
        }
        (Some(_), false) => {
            return Err(JobError::BadInput(
                "give source or importReport, not both".into(),
            ));
        }
        (None, true) => {
            return Err(JobError::BadInput(
                "source is required (or importReport)".into(),
            ));
        }
        (None, false) => {}
    }
    let manifest_url = match ObjectUrl::parse(&input.source) {
        Ok(url) => Some(url),
        Err(e) if input.source.starts_with("s3://") || input.source.starts_with("file://") => {
            return Err(e.into());
        }
        Err(_) => None,
    };
    if input.source.trim_start().starts_with('{') {
        let report = import_report(input.source.as_bytes(), "the source")?;
        return validate_import(report, &target_config, &input).await;
    }
    let (expected, target) = match manifest_url {
        Some(url) => {
            if input.save_source_manifest.is_some() {
                return Err(JobError::BadInput(
                    "saveSourceManifest needs a source database, not a manifest".into(),
                ));
            }
            let store = Store::for_url(&url, &ctx.store).await?;
            if !is_json(&store, &url).await? {
                return validate_against_archive(&store, &url, &target_config, &input).await;
            }
            let bytes = store.get_bytes(&url.key).await?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| JobError::BadInput(format!("{url} is not JSON: {e}")))?;
            if value.get("imports").is_some() {
                let report = import_report(&bytes, &url.to_string())?;
                return validate_import(report, &target_config, &input).await;
            }
            let manifest = read_manifest(&url, value)?;
            if options.checksums && manifest.tables.iter().any(|t| t.checksum.is_none()) {
                return Err(JobError::BadInput(format!(
                    "{url} records no checksums; validate without --checksums"
                )));
            }
            let target = validate::profile(&target_config, options).await?;
            (Expected::from(manifest), target)
        }
        None => {
            let source_config = super::database(&input.source).await?.direct();
            let save_to = input
                .save_source_manifest
                .as_deref()
                .map(ObjectUrl::parse)
                .transpose()?;
            let (source, target) = tokio::try_join!(
                validate::profile(&source_config, options),
                validate::profile(&target_config, options)
            )?;
            if let Some(url) = save_to {
                let manifest = serde_json::to_vec_pretty(&validate::manifest_of(&source))
                    .expect("manifests serialize");
                let store = Store::for_url(&url, &ctx.store).await?;
                store.put(&url.key, manifest.into()).await?;
            }
            (Expected::from(source), target)
        }
    };
    let scope = validate::Scope {
        owners: input.owners,
        privileges: input.privileges,
        database: input.database,
    };
    let comparison = validate::compare(&expected, &target, scope);
    Ok(ValidateOutput {
        matches: comparison.matches(),
        checksums: options.checksums,
        tables_compared: comparison.tables_compared,
        rows_compared: comparison.rows_compared,
        source_fingerprint: expected.schema.map(|s| s.fingerprint),
        target_fingerprint: target.schema.fingerprint,
        differences: comparison.differences,
        integrity: comparison.integrity,
        inherited: comparison.inherited,
        not_compared: comparison.not_compared,
    })
}

/// Whether the object at `url` is JSON (a manifest or an import report) rather than an
/// archive: a prefix is a directory archive; otherwise its first byte says.
async fn is_json(store: &Store, url: &ObjectUrl) -> Result<bool, JobError> {
    let key = url.key.as_str();
    if key.ends_with('/') || key.ends_with("toc.dat") {
        return Ok(false);
    }
    if key.ends_with(".json") {
        return Ok(true);
    }
    let head = store.get(&url.key, Some(0..1)).await?;
    let bytes: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(head).await?;
    Ok(bytes.concat().first() == Some(&b'{'))
}

/// Refuses checksums and `saveSourceManifest` for a source that has neither (`how` it is
/// checked instead).
fn counts_only(input: &ValidateInput, how: &str) -> Result<(), JobError> {
    if input.checksums || input.save_source_manifest.is_some() {
        return Err(JobError::BadInput(format!(
            "{how}; checksums and saveSourceManifest need a source database or a manifest"
        )));
    }
    Ok(())
}

/// Checks a database restored from an archive that has no manifest (a pg_dump archive or
/// plain dump from elsewhere): every table the archive holds data for has exactly the rows
/// the archive holds (counted by reading it), the database has no other table with rows, and
/// no integrity problem. The schema is not compared: the archive's DDL is not a profile.
async fn validate_against_archive(
    store: &Store,
    url: &ObjectUrl,
    target: &crate::pg::PgConfig,
    input: &ValidateInput,
) -> Result<ValidateOutput, JobError> {
    counts_only(
        input,
        "an archive without a manifest is checked by row counts",
    )?;
    let options = Options {
        checksums: false,
        jobs: input.jobs.unwrap_or(2).clamp(1, 64) as usize,
    };
    let (contents, target) = tokio::try_join!(
        async {
            crate::restore::contents(store, url)
                .await
                .map_err(JobError::from)
        },
        async {
            validate::profile(target, options)
                .await
                .map_err(JobError::from)
        }
    )?;
    let expected = Expected {
        tables: contents
            .tables
            .iter()
            .map(|t| validate::TableStats {
                schema: t.schema.clone(),
                name: t.name.clone(),
                rows: t.rows,
                checksum: None,
            })
            .collect(),
        schema: None,
        integrity: Vec::new(),
        format_version: crate::manifest::FORMAT_VERSION,
        server_version: None,
    };
    let views: Vec<String> = contents
        .materialized_views
        .iter()
        .map(|(schema, name)| {
            format!(
                "{}.{}",
                crate::sql::display_name(schema),
                crate::sql::display_name(name)
            )
        })
        .collect();
    let mut comparison = validate::compare(&expected, &target, validate::Scope::default());
    // Materialized views are refreshed, not loaded; a table the archive has no data for
    // (excluded when it was dumped) may exist as long as it is empty.
    comparison.differences.retain(|d| {
        let unexpected = d.check == "table" && d.expected.as_deref() == Some("absent");
        !(unexpected && (views.contains(&d.object) || d.actual.as_deref() == Some("0 rows")))
    });
    Ok(ValidateOutput {
        matches: comparison.matches(),
        checksums: false,
        tables_compared: comparison.tables_compared,
        rows_compared: comparison.rows_compared,
        source_fingerprint: None,
        target_fingerprint: target.schema.fingerprint,
        differences: comparison.differences,
        integrity: comparison.integrity,
        inherited: comparison.inherited,
        not_compared: vec![
            "the schema: an archive without a manifest is checked by row counts".into(),
        ],
    })
}

fn read_manifest(url: &ObjectUrl, value: serde_json::Value) -> Result<Manifest, JobError> {
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| JobError::BadInput(format!("{url} is not a ferry manifest: {e}")))?;
    if manifest.format_version > crate::manifest::FORMAT_VERSION {
        return Err(JobError::BadInput(format!(
            "{url} has manifest format {}; this ferry reads up to {}",
            manifest.format_version,
            crate::manifest::FORMAT_VERSION
        )));
    }
    Ok(manifest)
}

fn import_report(bytes: &[u8], what: &str) -> Result<ImportCsvOutput, JobError> {
    serde_json::from_slice(bytes).map_err(|e| {
        JobError::BadInput(format!(
            "{what} is not the report of an import-csv run (its JSON output): {e}"
        ))
    })
}

/// Checks a CSV import's report against the target: the ledger holds what the report says,
/// every row the import loaded is in its table (found by the transaction that wrote it, so
/// other rows of the table do not count), a replaced table holds nothing else, the columns are
/// there, and the table has no integrity problem.
async fn validate_import(
    report: ImportCsvOutput,
    target: &crate::pg::PgConfig,
    input: &ValidateInput,
) -> Result<ValidateOutput, JobError> {
    counts_only(
        input,
        "an import report is checked by counts and the ledger",
    )?;
    let session = crate::pg::connect(target).await?;
    let profile = validate::profile(
        target,
        Options {
            checksums: false,
            jobs: 1,
        },
    )
    .await?;
    let mut differences = Vec::new();
    let mut tables = Vec::new();
    let mut rows_compared = 0;
    let differ = |check: &str, object: &str, expected: String, actual: Option<String>| Difference {
        check: check.into(),
        kind: check.into(),
        object: object.into(),
        expected: Some(expected),
        actual,
    };
    for outcome in &report.imports {
        let what = format!("import of {}", outcome.source);
        let Some(done) = outcome.report.as_ref().filter(|_| {
            matches!(
                outcome.status,
                ImportStatus::Imported | ImportStatus::AlreadyImported
            )
        }) else {
            differences.push(differ(
                "import",
                &what,
                "imported".into(),
                Some(format!("{:?}", outcome.status).to_lowercase()),
            ));
            continue;
        };
        let url = ObjectUrl::parse(&outcome.source)?;
        let table = TableName::parse(&done.table).map_err(|e| JobError::BadInput(e.to_string()))?;
        let recorded = import::recorded(
            &session,
            url.bucket.as_deref().unwrap_or(""),
            url.key.as_str(),
            &done.version,
            &table.quoted(),
        )
        .await?;
        let Some(recorded) = recorded else {
            differences.push(differ(
                "import",
                &what,
                format!("a ledger row for version {} into {table}", done.version),
                None,
            ));
            continue;
        };
        for (name, want, got) in [
            ("rows read", done.rows_read, recorded.rows_read),
            ("rows loaded", done.rows_loaded, recorded.rows_loaded),
            ("rows rejected", done.rows_rejected, recorded.rows_rejected),
        ] {
            if want != got {
                differences.push(differ(
                    "import",
                    &format!("{what}: {name} in the ledger"),
                    want.to_string(),
                    Some(got.to_string()),
                ));
            }
        }
        if let (Some(want), Some(got)) = (&done.sha256, &recorded.sha256)
            && want != got
        {
            differences.push(differ(
                "import",
                &format!("{what}: SHA-256 of the object in the ledger"),
                want.clone(),
                Some(got.clone()),
            ));
        }
        let Some(xid) = &recorded.xid else {
            differences.push(differ(
                "import",
                &what,
                "the importing transaction in the ledger".into(),
                None,
            ));
            continue;
        };
        let (mine, all) = import::rows_of(&session, &table, xid).await?;
        rows_compared += mine;
        if mine != recorded.rows_loaded {
            differences.push(differ(
                "rows",
                &format!("{table}: rows of the {what}"),
                recorded.rows_loaded.to_string(),
                Some(mine.to_string()),
            ));
        }
        if recorded.mode == "replace" && all != recorded.rows_loaded {
            differences.push(differ(
                "rows",
                &format!("{table} (replaced by the {what})"),
                recorded.rows_loaded.to_string(),
                Some(all.to_string()),
            ));
        }
        let have: Vec<String> = session
            .query_typed(
                "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                &[(&table.quoted(), Type::TEXT)],
            )
            .await
            .map_err(crate::pg::PgError::from)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for column in done.columns.iter().filter(|c| !have.contains(c)) {
            differences.push(differ(
                "schema",
                &format!("{table}.{}", crate::sql::ident(column)),
                "the column the import loaded".into(),
                None,
            ));
        }
        tables.push(table);
    }
    tables.dedup();
    let integrity: Vec<Problem> = profile
        .integrity
        .into_iter()
        .filter(|p| {
            tables.iter().any(|t| {
                let name = format!(
                    "{}.{}",
                    crate::sql::display_name(&t.schema),
                    crate::sql::display_name(&t.table)
                );
                p.object == name
                    || p.object.starts_with(&format!("{name}."))
                    || p.detail.contains(&name)
            })
        })
        .collect();
    Ok(ValidateOutput {
        matches: differences.is_empty() && integrity.is_empty(),
        checksums: false,
        tables_compared: tables.len(),
        rows_compared,
        source_fingerprint: None,
        target_fingerprint: profile.schema.fingerprint,
        differences,
        integrity,
        inherited: Vec::new(),
        not_compared: Vec::new(),
    })
}

/// For Lambdas and workflows: a mismatch fails with `Ferry.ValidationFailed`, so that a state
/// machine can branch on it.
pub async fn validate_or_fail(
    input: ValidateInput,
    ctx: Context,
) -> Result<ValidateOutput, JobError> {
    let output = validate(input, ctx).await?;
    if !output.matches {
        return Err(JobError::ValidationFailed(output.summary()));
    }
    Ok(output)
}
