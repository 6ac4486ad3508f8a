//! pg_dump archive formats, as pure readers and writers over bytes.
//!
//! This module knows nothing of S3 or of database connections: snapshot feeds it catalog
//! entries and COPY bytes and ships what it returns; restore feeds it archive bytes. That keeps
//! every byte of the format testable in memory, with the real `pg_restore` as the oracle.
//!
//! Built so far: the custom format (`pg_dump -Fc`: header, table of contents and data blocks)
//! and the directory format (`pg_dump -Fd`: the same header and table of contents in `toc.dat`,
//! one gzip or plain file per table's data), written as archive 1.14 (readable by pg_restore 12
//! and later) with no or gzip compression, and read for archive versions 1.12 to 1.16. Not built
//! yet: lz4 and zstd data, large objects, the plain format.
//!
//! Data offsets are written as "not set", as pg_dump does when it writes to a pipe: an archive
//! streamed to S3 cannot seek back to patch the table of contents. pg_restore then finds each
//! data block by scanning, which it does for `-l`, `-d` and `-j` alike.

pub mod custom;
pub mod plain;

/// An archive format version, `1.minor.rev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
    pub rev: u8,
}

impl Version {
    pub const V1_12: Version = Version::new(1, 12);
    pub const V1_14: Version = Version::new(1, 14);
    pub const V1_15: Version = Version::new(1, 15);
    pub const V1_16: Version = Version::new(1, 16);

    pub const fn new(major: u8, minor: u8) -> Version {
        Version {
            major,
            minor,
            rev: 0,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}-{}", self.major, self.minor, self.rev)
    }
}

/// Where an entry restores: before data, data, or after data (indexes, constraints, triggers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    None = 1,
    PreData = 2,
    Data = 3,
    PostData = 4,
}

impl Section {
    fn from_int(value: i64) -> Result<Section, ArchiveError> {
        Ok(match value {
            1 => Section::None,
            2 => Section::PreData,
            3 => Section::Data,
            4 => Section::PostData,
            other => return Err(ArchiveError::Corrupt(format!("unknown section {other}"))),
        })
    }
}

/// Which container: one custom-format file, or a directory of `toc.dat` plus data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Custom,
    Directory,
}

/// How table data is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Compression {
    None,
    /// zlib streams (pg_dump calls it gzip), at a level 0-9 or zlib's default.
    Gzip {
        level: Option<u32>,
    },
    Lz4,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The lowest archive version that can carry this compression (lz4 and zstd need 1.15).
    pub fn minimum_version(self) -> Version {
        match self {
            Compression::None | Compression::Gzip { .. } => Version::V1_14,
            Compression::Lz4 | Compression::Zstd => Version::V1_15,
        }
    }
}

/// When the archive was made, as C's `struct tm` (month 0-based, year since 1900), which is
/// how the format stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreatedAt {
    pub sec: i32,
    pub min: i32,
    pub hour: i32,
    pub mday: i32,
    pub mon: i32,
    pub year: i32,
    pub isdst: i32,
}

impl CreatedAt {
    /// A UTC time as `struct tm`.
    pub fn from_system_time(at: std::time::SystemTime) -> CreatedAt {
        let text = humantime::format_rfc3339_seconds(at).to_string(); // YYYY-MM-DDTHH:MM:SSZ
        let n = |range: std::ops::Range<usize>| text[range].parse::<i32>().unwrap_or(0);
        CreatedAt {
            year: n(0..4) - 1900,
            mon: n(5..7) - 1,
            mday: n(8..10),
            hour: n(11..13),
            min: n(14..16),
            sec: n(17..19),
            isdst: 0,
        }
    }
}

/// The archive header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    pub int_size: u8,
    pub off_size: u8,
    pub compression: Compression,
    pub created: CreatedAt,
    pub database: String,
    pub server_version: String,
    pub dumper_version: String,
}

/// Where an entry's data block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The entry has data, position unknown (found by scanning).
    NotSet,
    Set(u64),
    /// The entry has no data.
    NoData,
}

/// One table-of-contents entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub dump_id: i32,
    pub had_dumper: bool,
    /// Catalog oid of the object's catalog, as decimal text (`"1259"` for pg_class).
    pub table_oid: String,
    pub oid: String,
    pub tag: String,
    /// Object kind: `TABLE`, `TABLE DATA`, `INDEX`, `CONSTRAINT`, `ENCODING`, ...
    pub desc: String,
    pub section: Section,
    pub defn: Option<String>,
    pub drop_stmt: Option<String>,
    pub copy_stmt: Option<String>,
    pub namespace: Option<String>,
    pub tablespace: Option<String>,
    pub tableam: Option<String>,
    /// `pg_class.relkind` as a byte (archive 1.16), 0 when not a relation.
    pub relkind: u8,
    pub owner: Option<String>,
    pub dependencies: Vec<i32>,
    pub offset: Offset,
    /// Directory format: the entry's data file, relative to the archive directory (`5.dat`,
    /// without compression suffix); `None` for entries without data and in custom archives.
    pub file: Option<String>,
}

impl TocEntry {
    /// An entry with the common defaults: no data, no oid, no dependencies.
    pub fn new(dump_id: i32, desc: &str, tag: &str, section: Section) -> TocEntry {
        TocEntry {
            dump_id,
            had_dumper: false,
            table_oid: "0".into(),
            oid: "0".into(),
            tag: tag.into(),
            desc: desc.into(),
            section,
            defn: None,
            drop_stmt: None,
            copy_stmt: None,
            namespace: None,
            tablespace: None,
            tableam: None,
            relkind: 0,
            owner: None,
            dependencies: Vec::new(),
            offset: Offset::NoData,
            file: None,
        }
    }
}

/// Whether an entry is one of the database's own (`DATABASE`, `DATABASE PROPERTIES`, and the
/// database's comment, grants and security label): pg_restore runs them only with `--create`,
/// since they name the database the dump was taken from.
pub fn is_database_level(desc: &str, tag: &str) -> bool {
    matches!(desc, "DATABASE" | "DATABASE PROPERTIES")
        || (matches!(desc, "COMMENT" | "ACL" | "SECURITY LABEL") && tag.starts_with("DATABASE "))
}

/// Why an archive could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a pg_dump custom-format archive (no PGDMP header)")]
    NotAnArchive,
    #[error("the archive ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("archive version {0} is not supported (ferry reads 1.12 to 1.16)")]
    UnsupportedVersion(Version),
    #[error("{0} is not built yet")]
    NotBuilt(&'static str),
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    #[error("decompressing table data: {0}")]
    Decompress(std::io::Error),
}
