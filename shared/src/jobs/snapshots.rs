//! The snapshots under a prefix: list them (newest first, from their manifests) and prune them
//! by a retention policy (a dry run unless asked to delete).

use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::{
    catalog::{self, CatalogError, Incomplete, RetentionPolicy, SnapshotInfo},
    store::{ObjectUrl, Store},
};

impl From<CatalogError> for JobError {
    fn from(e: CatalogError) -> JobError {
        match e {
            CatalogError::Store(e) => JobError::Store(e),
            CatalogError::BadInput(m) => JobError::BadInput(m),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListInput {
    /// The prefix to look under (`s3://bucket/backups/` or `file:///dir/`), at any depth.
    pub from: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListOutput {
    /// Complete snapshots, newest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Objects of snapshots without a manifest (being written, or failed).
    pub incomplete: Vec<Incomplete>,
}

pub async fn list_snapshots(input: ListInput, ctx: Context) -> Result<ListOutput, JobError> {
    let url = ObjectUrl::parse(&input.from)?;
    let store = Store::for_url(&url, &ctx.store).await?;
    let found = catalog::catalog(&store, &url).await?;
    Ok(ListOutput {
        snapshots: found.complete,
        incomplete: found.incomplete,
    })
}

/// Which snapshots under a prefix to delete: each series (the prefix a snapshot sits under)
/// keeps what any rule keeps.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PruneInput {
    /// The prefix to prune under (`s3://bucket/backups/` or `file:///dir/`).
    pub from: String,
    /// The rules: `keepLast`, `keepDaily`, `keepWeekly`, `keepWithin` (at least one).
    #[serde(default)]
    pub policy: RetentionPolicy,
    /// Delete for real; without it, only say what would be deleted.
    #[serde(default)]
    pub delete: bool,
    /// Also delete snapshots without a manifest whose newest object is older than this
    /// (default `2d`): a run that failed or a prune that was interrupted. Younger ones may be
    /// being written and are left alone.
    #[serde(default)]
    pub incomplete_older_than: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptSnapshot {
    pub location: String,
    pub created_at: String,
    /// Why: `last 7`, `daily`, `weekly`, `within 30d`.
    pub reasons: Vec<String>,
}

/// A snapshot the policy would delete but S3 Object Lock keeps: none of it is deleted.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockedSnapshot {
    pub location: String,
    pub created_at: String,
    /// When the last of its objects' locks ends (RFC 3339).
    pub locked_until: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrunedSnapshot {
    pub location: String,
    /// Empty for a snapshot without a manifest.
    pub created_at: String,
    pub objects: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneOutput {
    /// True when nothing was deleted (`delete` was not given).
    pub dry_run: bool,
    pub kept: Vec<KeptSnapshot>,
    /// Past the policy, but locked (S3 Object Lock): retained whole, with the lock's end.
    #[serde(default)]
    pub locked: Vec<LockedSnapshot>,
    /// Deleted (or, in a dry run, to be deleted), whole: the manifest first, then the rest.
    pub deleted: Vec<PrunedSnapshot>,
    /// Snapshots without a manifest deleted (or to be) for being older than the limit.
    pub incomplete_deleted: Vec<PrunedSnapshot>,
    /// Snapshots without a manifest left alone (they may still be being written).
    pub incomplete_left: Vec<PrunedSnapshot>,
}

pub async fn prune(input: PruneInput, ctx: Context) -> Result<PruneOutput, JobError> {
    let url = ObjectUrl::parse(&input.from)?;
    let limit = match input.incomplete_older_than.as_deref() {
        None => Duration::from_secs(2 * 86_400),
        Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            JobError::BadInput(format!(
                "incompleteOlderThan {text:?} is not a duration such as 2d: {e}"
            ))
        })?,
    };
    let store = Store::for_url(&url, &ctx.store).await?;
    let found = catalog::catalog(&store, &url).await?;
    let now = SystemTime::now();
    // Each series on its own, newest first.
    let series: std::collections::BTreeSet<&str> =
        found.complete.iter().map(|s| s.series.as_str()).collect();
    let mut kept = Vec::new();
    let mut doomed: Vec<&SnapshotInfo> = Vec::new();
    for name in series {
        let members: Vec<&SnapshotInfo> =
            found.complete.iter().filter(|s| s.series == name).collect();
        let times: Vec<Option<SystemTime>> = members.iter().map(|s| s.taken).collect();
        let reasons = catalog::retain(&times, &input.policy, now)?;
        for (snapshot, reasons) in members.into_iter().zip(reasons) {
            if reasons.is_empty() {
                doomed.push(snapshot);
            } else {
                kept.push(KeptSnapshot {
                    location: snapshot.location.clone(),
                    created_at: snapshot.created_at.clone(),
                    reasons,
                });
            }
        }
    }
    if found.complete.is_empty() {
        // Still check the policy, so a bad one is an error even on an empty prefix.
        catalog::retain(&[], &input.policy, now)?;
    }
    let mut deleted = Vec::new();
    let mut locked = Vec::new();
    for snapshot in doomed {
        // A locked object cannot be deleted (a delete without a version id would only hide it
        // behind a delete marker): a snapshot with any locked object is kept whole.
        let mut until: Option<SystemTime> = None;
        for key in &snapshot.keys {
            if let Some(t) = store.head(key).await?.locked_until
                && t > now
            {
                until = Some(until.map_or(t, |u| u.max(t)));
            }
        }
        if let Some(until) = until {
            locked.push(LockedSnapshot {
                location: snapshot.location.clone(),
                created_at: snapshot.created_at.clone(),
                locked_until: humantime::format_rfc3339_seconds(until).to_string(),
            });
            continue;
        }
        if input.delete {
            // The manifest first: from then on the snapshot is incomplete, never chosen, and
            // an interrupted prune leaves nothing that looks whole.
            let (manifests, rest): (Vec<_>, Vec<_>) = snapshot
                .keys
                .iter()
                .partition(|k| k.as_str().ends_with("manifest.json"));
            for key in manifests.into_iter().chain(rest) {
                store.delete(key).await?;
            }
        }
        deleted.push(PrunedSnapshot {
            location: snapshot.location.clone(),
            created_at: snapshot.created_at.clone(),
            objects: snapshot.keys.len(),
            bytes: snapshot.bytes,
        });
    }
    let mut incomplete_deleted = Vec::new();
    let mut incomplete_left = Vec::new();
    for part in &found.incomplete {
        let old = part
            .newest
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() > limit);
        let entry = PrunedSnapshot {
            location: part.location.clone(),
            created_at: String::new(),
            objects: part.objects,
            bytes: part.bytes,
        };
        if old {
            if input.delete {
                for key in &part.keys {
                    store.delete(key).await?;
                }
            }
            incomplete_deleted.push(entry);
        } else {
            incomplete_left.push(entry);
        }
    }
    Ok(PruneOutput {
        dry_run: !input.delete,
        kept,
        locked,
        deleted,
        incomplete_deleted,
        incomplete_left,
    })
}
