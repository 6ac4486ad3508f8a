//! Validate: compare a source (a database, or a snapshot's manifest) with a target database.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::{
    manifest::Manifest,
    store::{ObjectUrl, Store},
    validate::{self, Difference, Expected, Options, Problem},
};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidateInput {
    /// A database (URL, Secrets Manager or `neon://` reference) or a snapshot's `manifest.json`
    /// (`s3://...` or `file:///...`).
    pub source: String,
    /// The database to check (URL, Secrets Manager or `neon://` reference).
    pub target: String,
    /// Compare per-table content checksums as well as counts, schema and integrity.
    #[serde(default)]
    pub checksums: bool,
    /// Connections per database used at once (default 2).
    #[serde(default)]
    pub jobs: Option<u32>,
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
        for d in &self.differences {
            lines.push(format!(
                "  {:<9} {}: expected {}, actual {}",
                d.check,
                d.object,
                d.expected.as_deref().unwrap_or("nothing"),
                d.actual.as_deref().unwrap_or("nothing")
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
    let manifest_url = match ObjectUrl::parse(&input.source) {
        Ok(url) => Some(url),
        Err(e) if input.source.starts_with("s3://") || input.source.starts_with("file://") => {
            return Err(e.into());
        }
        Err(_) => None,
    };
    let (expected, target) = match manifest_url {
        Some(url) => {
            if input.save_source_manifest.is_some() {
                return Err(JobError::BadInput(
                    "saveSourceManifest needs a source database, not a manifest".into(),
                ));
            }
            let manifest = read_manifest(&url, &ctx).await?;
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
    let comparison = validate::compare(&expected, &target);
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
    })
}

async fn read_manifest(url: &ObjectUrl, ctx: &Context) -> Result<Manifest, JobError> {
    let store = Store::for_url(url, &ctx.store).await?;
    let bytes = store.get_bytes(&url.key).await?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
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
