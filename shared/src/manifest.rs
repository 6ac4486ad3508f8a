//! `manifest.json`: what a snapshot contains, written last beside the archive.
//!
//! A snapshot is complete only when its manifest exists. Besides locating the archive, the
//! manifest is what `validate` compares a restored database with: every table's row count and
//! content checksum (computed by the same server-side query `validate` runs), and the schema
//! fingerprint with the facts it was computed from.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The manifest format this build writes and reads.
/// 2: the schema facts include sequence positions, owners, grants, comments and every
/// object kind (validate compares a format 1 manifest on what it holds).
/// 3: grants changed on the system's objects and on extension members; DEPENDS ON EXTENSION;
/// subscriptions.
/// 4: custom (dotted) database and role settings recorded by digest, not in clear.
pub const FORMAT_VERSION: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    /// The ferry version that wrote it.
    pub tool_version: String,
    /// RFC 3339.
    pub created_at: String,
    pub source: ManifestSource,
    /// The archive (object or prefix) this manifest describes, when there is one.
    #[serde(default)]
    pub archive: Option<String>,
    pub tables: Vec<ManifestTable>,
    /// Every object of the snapshot with its size and sha256.
    #[serde(default)]
    pub objects: Vec<ManifestObject>,
    #[serde(default)]
    pub schema: Option<SchemaDigest>,
    /// Integrity problems the source already had (a restore that has them too is not at fault).
    #[serde(default)]
    pub integrity: Vec<Problem>,
    /// Custom-format archives: where each table's data block starts (dump id -> byte offset).
    /// The archive itself cannot say (it is streamed, so its table of contents is written
    /// before the data); with these a restore reads blocks in parallel by ranged reads.
    #[serde(default)]
    pub data_offsets: BTreeMap<i32, u64>,
    /// How the snapshot's objects are stored (S3 encryption, KMS key, storage class, tags),
    /// when anything was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<crate::store::WriteSettings>,
}

/// An integrity problem found in one database (recorded in a manifest: problems the
/// source already had are not a restore's fault).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `orphaned-rows`, `sequence-behind`, `invalid-index` or `unvalidated-constraint`.
    pub check: String,
    pub object: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSource {
    pub server_version: String,
    pub database: String,
    #[serde(default)]
    pub neon_project: Option<String>,
    #[serde(default)]
    pub neon_branch: Option<String>,
    /// WAL position the data was read at, when known.
    #[serde(default)]
    pub lsn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTable {
    pub schema: String,
    pub name: String,
    pub rows: u64,
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Order-independent content checksum (see `validate`), when computed.
    #[serde(default)]
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestObject {
    pub key: String,
    pub size: u64,
    /// Of the object's bytes; for an object joined from `parts`, of the parts' hex digests,
    /// one per line (no single process read the whole object).
    pub sha256: String,
    /// An object joined from pieces (a large table's data written by several workers): each
    /// piece's size and sha256, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ObjectPart>,
}

/// One piece of an object joined from several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPart {
    pub size: u64,
    pub sha256: String,
}

/// A schema's fingerprint and the normalised facts (object → definition) behind it, so that a
/// later comparison can say what differs, not only that something does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaDigest {
    pub fingerprint: String,
    pub facts: BTreeMap<String, String>,
}
