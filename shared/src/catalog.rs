//! The snapshots under a prefix, read from their manifests: listing newest first, choosing the
//! latest (or the newest at or before a time), and retention (which to keep, which to delete).
//!
//! A snapshot is the set of objects ferry wrote under one prefix: `archive.dump`, `archive.sql`
//! or `archive/...`, and `manifest.json`, written last. Only a snapshot with its manifest is
//! complete; one without (still being written, or a run that failed) is never chosen and never
//! counted towards retention. Snapshots are grouped in *series* by the prefix they sit under
//! (`backups/neondb/2026-11-26T03:00:00Z/` is in the series `backups/neondb/`): retention
//! applies to each series on its own.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, SystemTime},
};

use futures::{StreamExt, TryStreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    manifest::Manifest,
    store::{Key, ObjectMeta, ObjectUrl, Store, StoreError},
};

/// One complete snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// The snapshot's prefix (`s3://bucket/backups/neondb/2026-11-26T03:00:00Z/`).
    pub location: String,
    /// Its archive (an object, or a directory archive's prefix).
    pub archive: String,
    pub manifest: String,
    /// When it was taken (the manifest's `createdAt`, RFC 3339).
    pub created_at: String,
    /// The series (the prefix it sits under).
    pub series: String,
    pub database: String,
    pub tables: usize,
    pub rows: u64,
    /// Bytes of all its objects.
    pub bytes: u64,
    #[serde(skip)]
    pub keys: Vec<Key>,
    #[serde(skip)]
    pub taken: Option<SystemTime>,
}

/// Objects of a snapshot without a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incomplete {
    pub location: String,
    pub objects: usize,
    pub bytes: u64,
    /// When its newest object was written (RFC 3339), when the store says.
    pub last_written: Option<String>,
    #[serde(skip)]
    pub keys: Vec<Key>,
    #[serde(skip)]
    pub newest: Option<SystemTime>,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Newest first.
    pub complete: Vec<SnapshotInfo>,
    pub incomplete: Vec<Incomplete>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    BadInput(String),
}

/// The snapshot a key belongs to: the prefix before ferry's own object names, or `None` for
/// an object ferry did not write as part of a snapshot.
fn snapshot_prefix(key: &str) -> Option<&str> {
    if let Some(prefix) = key.strip_suffix("manifest.json") {
        return (prefix.is_empty() || prefix.ends_with('/')).then_some(prefix);
    }
    for name in ["archive.dump", "archive.sql"] {
        if let Some(prefix) = key.strip_suffix(name) {
            return (prefix.is_empty() || prefix.ends_with('/')).then_some(prefix);
        }
    }
    let at = key
        .rfind("/archive/")
        .map(|i| i + 1)
        .or_else(|| key.starts_with("archive/").then_some(0))?;
    Some(&key[..at])
}

/// The series a snapshot prefix belongs to: the prefix one level up.
fn series_of(prefix: &str) -> &str {
    let trimmed = prefix.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(at) => &prefix[..at + 1],
        None => "",
    }
}

/// Reads every snapshot under `prefix` (all pages of the listing; manifests read eight at a
/// time).
pub async fn catalog(store: &Store, url: &ObjectUrl) -> Result<Catalog, CatalogError> {
    let prefix = if url.key.as_str().is_empty() || url.key.as_str().ends_with('/') {
        url.key.clone()
    } else {
        Key::prefix(format!("{}/", url.key.as_str()))?
    };
    let objects = store.list(&prefix).await?;
    let mut groups: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for object in objects {
        if let Some(p) = snapshot_prefix(object.key.as_str()) {
            groups.entry(p.to_string()).or_default().push(object);
        }
    }
    let reads = groups.into_iter().map(|(p, objects)| async move {
        let manifest = objects
            .iter()
            .find(|o| o.key.as_str() == format!("{p}manifest.json"))
            .map(|o| o.key.clone());
        let parsed = match manifest {
            Some(key) => {
                let bytes = store.get_bytes(&key).await?;
                serde_json::from_slice::<Manifest>(&bytes).ok()
            }
            None => None,
        };
        Ok::<_, StoreError>((p, objects, parsed))
    });
    let read: Vec<_> = futures::stream::iter(reads)
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let mut out = Catalog::default();
    for (p, objects, manifest) in read {
        let location = store.url(&Key::prefix(p.clone())?).to_string();
        let bytes = objects.iter().map(|o| o.size).sum();
        let keys: Vec<Key> = objects.iter().map(|o| o.key.clone()).collect();
        match manifest {
            Some(m) => {
                let taken = humantime::parse_rfc3339_weak(&m.created_at).ok();
                let archive = m.archive.clone().unwrap_or_else(|| {
                    let name = keys
                        .iter()
                        .map(Key::as_str)
                        .find(|k| !k.ends_with("manifest.json"))
                        .map(|k| {
                            if k[p.len()..].starts_with("archive/") {
                                format!("{p}archive/")
                            } else {
                                k.to_string()
                            }
                        })
                        .unwrap_or_default();
                    store
                        .url(&Key::prefix(name).unwrap_or_else(|_| prefix.clone()))
                        .to_string()
                });
                out.complete.push(SnapshotInfo {
                    location,
                    archive,
                    manifest: store
                        .url(&Key::new(format!("{p}manifest.json"))?)
                        .to_string(),
                    created_at: m.created_at.clone(),
                    series: series_of(&p).to_string(),
                    database: m.source.database.clone(),
                    tables: m.tables.len(),
                    rows: m.tables.iter().map(|t| t.rows).sum(),
                    bytes,
                    keys,
                    taken,
                });
            }
            None => {
                let newest = objects.iter().filter_map(|o| o.last_modified).max();
                out.incomplete.push(Incomplete {
                    location,
                    objects: keys.len(),
                    bytes,
                    last_written: newest.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    keys,
                    newest,
                });
            }
        }
    }
    out.complete
        .sort_by(|a, b| b.taken.cmp(&a.taken).then(b.location.cmp(&a.location)));
    Ok(out)
}

impl Catalog {
    /// The newest complete snapshot, or the newest taken at or before `as_of`. With several
    /// series under the prefix the choice would be ambiguous: that is an error naming them.
    pub fn choose(&self, as_of: Option<SystemTime>) -> Result<&SnapshotInfo, CatalogError> {
        let series: BTreeSet<&str> = self.complete.iter().map(|s| s.series.as_str()).collect();
        if series.len() > 1 {
            return Err(CatalogError::BadInput(format!(
                "the prefix holds snapshots of {} series ({}); give the prefix of one",
                series.len(),
                series.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let found = self.complete.iter().find(|s| match (as_of, s.taken) {
            (None, _) => true,
            (Some(limit), Some(taken)) => taken <= limit,
            (Some(_), None) => false,
        });
        found.ok_or_else(|| {
            CatalogError::BadInput(match as_of {
                None => "no complete snapshot (one with its manifest.json) under the prefix".into(),
                Some(t) => format!(
                    "no complete snapshot taken at or before {}",
                    humantime::format_rfc3339_seconds(t)
                ),
            })
        })
    }
}

/// Which snapshots of a series to keep. At least one rule must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// The newest N snapshots.
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// The newest snapshot of each of the last N days (UTC) that have one.
    #[serde(default)]
    pub keep_daily: Option<u32>,
    /// The newest snapshot of each of the last N weeks (ISO weeks, UTC) that have one.
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    /// Every snapshot taken within this long before now (`30d`, `12h`).
    #[serde(default)]
    pub keep_within: Option<String>,
}

impl RetentionPolicy {
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_within.is_none()
    }

    fn within(&self) -> Result<Option<Duration>, CatalogError> {
        self.keep_within
            .as_deref()
            .map(|text| {
                humantime::parse_duration(text.trim()).map_err(|e| {
                    CatalogError::BadInput(format!(
                        "keepWithin {text:?} is not a duration such as 30d or 12h: {e}"
                    ))
                })
            })
            .transpose()
    }
}

const DAY: u64 = 86_400;

/// The day number (since 1970-01-01, UTC) and the ISO week number (weeks start on Monday;
/// 1970-01-01 was a Thursday) of a time.
fn day_and_week(t: SystemTime) -> (u64, u64) {
    let day = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / DAY;
    (day, (day + 3) / 7)
}

/// For snapshots of one series, newest first: the reasons each is kept (empty: delete it).
pub fn retain(
    taken: &[Option<SystemTime>],
    policy: &RetentionPolicy,
    now: SystemTime,
) -> Result<Vec<Vec<String>>, CatalogError> {
    if policy.is_empty() {
        return Err(CatalogError::BadInput(
            "a retention policy needs at least one of keepLast, keepDaily, keepWeekly, keepWithin \
             (pruning with none would delete every snapshot)"
                .into(),
        ));
    }
    let within = policy.within()?;
    let mut reasons = vec![Vec::new(); taken.len()];
    let mut days = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    for (i, t) in taken.iter().enumerate() {
        // A snapshot whose time cannot be read is kept: never delete what cannot be judged.
        let Some(t) = *t else {
            reasons[i].push("no readable time".to_string());
            continue;
        };
        if policy.keep_last.is_some_and(|n| (i as u64) < n as u64) {
            reasons[i].push(format!("last {}", policy.keep_last.unwrap_or(0)));
        }
        let (day, week) = day_and_week(t);
        if let Some(n) = policy.keep_daily
            && !days.contains(&day)
            && days.len() < n as usize
        {
            days.insert(day);
            reasons[i].push("daily".to_string());
        }
        if let Some(n) = policy.keep_weekly
            && !weeks.contains(&week)
            && weeks.len() < n as usize
        {
            weeks.insert(week);
            reasons[i].push("weekly".to_string());
        }
        if let Some(d) = within
            && now.duration_since(t).unwrap_or_default() <= d
        {
            reasons[i].push(format!(
                "within {}",
                policy.keep_within.as_deref().unwrap_or_default()
            ));
        }
    }
    Ok(reasons)
}

/// What a key template's variables stand for, for one snapshot.
#[derive(Debug, Clone, Default)]
pub struct KeyValues {
    /// The Neon project, when the source is a branch.
    pub project: Option<String>,
    /// The Neon branch (as the source names it), when the source is a branch.
    pub branch: Option<String>,
    pub database: String,
    pub taken: Option<SystemTime>,
}

/// The snapshot's own prefix under `to` from a key template such as
/// `{project}/{branch}/{database}/{timestamp}/`. Variables: `{project}`, `{branch}` (`-` when
/// the source is not a Neon branch), `{database}`, `{timestamp}` (`2026-11-26T030000Z`, UTC:
/// sorts by time, no `:`), `{date}` (`2026-11-26`). A value is one key segment whatever it
/// holds: every character outside S3's safe set (letters, digits, `!-_.*'()`) is
/// percent-encoded, so a `/` in a database name cannot add a level and nothing needs escaping
/// downstream. The result ends with `/`.
pub fn render_key_template(template: &str, values: &KeyValues) -> Result<String, CatalogError> {
    let taken = values.taken.unwrap_or_else(SystemTime::now);
    let stamp = humantime::format_rfc3339_seconds(taken).to_string();
    // 2026-11-26T03:00:00Z
    let date = stamp[..10].to_string();
    let timestamp = format!("{}{}Z", &stamp[..11], stamp[11..19].replace(':', ""));
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| {
            CatalogError::BadInput(format!("key template {template:?}: a `{{` is not closed"))
        })?;
        let name = &rest[open + 1..close];
        let value = match name {
            "project" => encode_segment(values.project.as_deref().unwrap_or("-")),
            "branch" => encode_segment(values.branch.as_deref().unwrap_or("-")),
            "database" => encode_segment(&values.database),
            "timestamp" => timestamp.clone(),
            "date" => date.clone(),
            other => {
                return Err(CatalogError::BadInput(format!(
                    "key template {template:?}: unknown variable {{{other}}} (use project, \
                     branch, database, timestamp, date)"
                )));
            }
        };
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(CatalogError::BadInput(format!(
            "key template {template:?}: a `}}` without its `{{`"
        )));
    }
    out.push_str(rest);
    if out.starts_with('/') || out.contains("//") {
        return Err(CatalogError::BadInput(format!(
            "key template {template:?} makes an empty key segment ({out:?})"
        )));
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

/// One key segment: S3's safe characters as they are, every other byte as `%XX`.
fn encode_segment(value: &str) -> String {
    if value.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` are not safe as segments of a file:// path.
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates_render_one_safe_segment_per_value() {
        let values = KeyValues {
            project: Some("lively-sea-123".into()),
            branch: Some("br-x".into()),
            database: "my db/with ÷ and %".into(),
            taken: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_138_496)),
        };
        assert_eq!(
            render_key_template("{project}/{branch}/{database}/{timestamp}/", &values).unwrap(),
            "lively-sea-123/br-x/my%20db%2Fwith%20%C3%B7%20and%20%25/2026-11-20T013456Z/"
        );
        assert_eq!(
            render_key_template(
                "daily/{date}/{database}",
                &KeyValues {
                    database: "app".into(),
                    ..values.clone()
                }
            )
            .unwrap(),
            "daily/2026-11-20/app/"
        );
        let plain = KeyValues {
            database: "..".into(),
            ..KeyValues::default()
        };
        assert_eq!(
            render_key_template("{project}/{database}/", &plain).unwrap(),
            "-/%2E%2E/"
        );
        for bad in [
            "{nope}/",
            "{database",
            "db}/",
            "/{database}/",
            "{database}//x/",
        ] {
            assert!(render_key_template(bad, &values).is_err(), "{bad}");
        }
        // Time order is key order.
        let at = |secs| {
            render_key_template(
                "{timestamp}/",
                &KeyValues {
                    taken: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
                    ..KeyValues::default()
                },
            )
            .unwrap()
        };
        assert!(at(1_795_138_496) < at(1_795_138_497) && at(1_795_138_497) < at(1_800_000_000));
    }

    #[test]
    fn objects_belong_to_the_snapshot_ferry_wrote_them_in() {
        assert_eq!(snapshot_prefix("b/db/t1/manifest.json"), Some("b/db/t1/"));
        assert_eq!(snapshot_prefix("b/db/t1/archive.dump"), Some("b/db/t1/"));
        assert_eq!(snapshot_prefix("b/db/t1/archive.sql"), Some("b/db/t1/"));
        assert_eq!(snapshot_prefix("b/db/t1/archive/toc.dat"), Some("b/db/t1/"));
        assert_eq!(
            snapshot_prefix("b/db/t1/archive/3001.dat.gz"),
            Some("b/db/t1/")
        );
        assert_eq!(snapshot_prefix("manifest.json"), Some(""));
        assert_eq!(snapshot_prefix("b/notes.txt"), None);
        assert_eq!(snapshot_prefix("b/mymanifest.json"), None);
        assert_eq!(series_of("b/db/t1/"), "b/db/");
        assert_eq!(series_of("t1/"), "");
    }

    fn at(day: u64, hour: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(day * DAY + hour * 3600))
    }

    fn kept(taken: &[Option<SystemTime>], policy: RetentionPolicy, now: u64) -> Vec<usize> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now * DAY);
        retain(taken, &policy, now)
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn retention_rules_keep_the_union_of_what_each_keeps() {
        // Newest first: two a day (12:00 and 03:00) on days 20 down to 11.
        let taken: Vec<_> = (11..=20)
            .rev()
            .flat_map(|d| [at(d, 12), at(d, 3)])
            .collect();
        let last = |n| RetentionPolicy {
            keep_last: Some(n),
            ..Default::default()
        };
        assert_eq!(kept(&taken, last(3), 21), vec![0, 1, 2]);
        let daily = RetentionPolicy {
            keep_daily: Some(3),
            ..Default::default()
        };
        // The newest of each of the last three days.
        assert_eq!(kept(&taken, daily, 21), vec![0, 2, 4]);
        let weekly = RetentionPolicy {
            keep_weekly: Some(2),
            ..Default::default()
        };
        // Weeks start on day 4 + 7k: days 18..=20 and 11..=17 are two weeks.
        assert_eq!(kept(&taken, weekly, 21), vec![0, 6]);
        let within = RetentionPolicy {
            keep_within: Some("2d".into()),
            ..Default::default()
        };
        // Within two days of day 21 00:00: day 19 00:00 and later.
        assert_eq!(kept(&taken, within, 21), vec![0, 1, 2, 3]);
        let union = RetentionPolicy {
            keep_last: Some(1),
            keep_weekly: Some(2),
            ..Default::default()
        };
        assert_eq!(kept(&taken, union, 21), vec![0, 6]);
        // Unreadable times are kept.
        assert_eq!(kept(&[None, at(1, 0)], last(0), 21), vec![0]);
    }

    #[test]
    fn no_rule_is_refused() {
        let err = retain(&[at(1, 0)], &RetentionPolicy::default(), SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("at least one"), "{err}");
        let bad = RetentionPolicy {
            keep_within: Some("a while".into()),
            ..Default::default()
        };
        assert!(retain(&[], &bad, SystemTime::now()).is_err());
    }
}
