//! The rejects writer: the rows set aside, as a CSV object beside the import.

use bytes::Bytes;
use serde::Serialize;

use crate::store::{ObjectUrl, StoreError};

/// One bad row that was set aside.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRow {
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub reason: String,
    #[serde(skip)]
    pub record: Bytes,
}

impl std::fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        if let Some(value) = &self.value {
            write!(f, ", value {value:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The rejected rows as CSV: line, column, value, reason, and the record as the file had it.
pub(super) fn rejects_csv(rows: &[RejectedRow]) -> Bytes {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
    let mut out = b"line,column,value,reason,record\n".to_vec();
    for r in rows {
        out.extend_from_slice(r.line.to_string().as_bytes());
        out.push(b',');
        field(&mut out, r.column.as_deref().unwrap_or("").as_bytes());
        out.push(b',');
        field(&mut out, r.value.as_deref().unwrap_or("").as_bytes());
        out.push(b',');
        field(&mut out, r.reason.as_bytes());
        out.push(b',');
        let record = r
            .record
            .strip_suffix(b"\n")
            .map(|x| x.strip_suffix(b"\r").unwrap_or(x))
            .unwrap_or(&r.record);
        field(&mut out, record);
        out.push(b'\n');
    }
    out.into()
}

/// Where the rejects of `source` go: the given object, or `<prefix><file name>.rejects.csv`.
pub fn rejects_location(
    rejects_to: &ObjectUrl,
    source: &ObjectUrl,
) -> Result<ObjectUrl, StoreError> {
    let to = rejects_to.key.as_str();
    if to.is_empty() || to.ends_with('/') {
        let name = source.key.as_str().rsplit('/').next().unwrap_or("import");
        rejects_to.join(&format!("{name}.rejects.csv"))
    } else {
        Ok(rejects_to.clone())
    }
}
