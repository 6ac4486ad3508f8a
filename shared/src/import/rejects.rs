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
    /// Why, in full: the rejects file's column (the user's own data, beside the record).
    pub reason: String,
    /// Why, quoting no value: what errors, logs and notifications say (see
    /// [`crate::pg::values_shown`]).
    #[serde(skip)]
    pub summary: String,
    #[serde(skip)]
    pub record: Bytes,
}

impl std::fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(
                f,
                "a row (which line, only the server's error context says, and it is not in English)"
            )?,
            line => write!(f, "line {line}")?,
        }
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        if !crate::pg::values_shown() {
            return write!(f, ": {}", self.summary);
        }
        if let Some(value) = &self.value {
            write!(f, ", value {value:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The rejected rows as CSV (written by the `csv` crate: RFC 4180, fields quoted unless
/// numeric): line, column, value, reason, and the record as the file had it.
pub(super) fn rejects_csv(rows: &[RejectedRow]) -> Bytes {
    let mut out = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::NonNumeric)
        .from_writer(b"line,column,value,reason,record\n".to_vec());
    let write = |out: &mut csv::Writer<Vec<u8>>| -> csv::Result<()> {
        for r in rows {
            let record = r
                .record
                .strip_suffix(b"\n")
                .map(|x| x.strip_suffix(b"\r").unwrap_or(x))
                .unwrap_or(&r.record);
            out.write_record([
                r.line.to_string().as_bytes(),
                r.column.as_deref().unwrap_or("").as_bytes(),
                r.value.as_deref().unwrap_or("").as_bytes(),
                r.reason.as_bytes(),
                record,
            ])?;
        }
        out.flush()?;
        Ok(())
    };
    write(&mut out).expect("writing CSV to memory cannot fail");
    out.into_inner()
        .expect("flushed to memory, nothing left to write")
        .into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_are_csv_that_reads_back() {
        let rows = [RejectedRow {
            line: 8,
            column: Some("amount".into()),
            value: Some("not, \"a\" number".into()),
            reason: "invalid input syntax".into(),
            summary: String::new(),
            record: Bytes::from_static(b"8,x,\"not, \"\"a\"\" number\"\r\n"),
        }];
        let text = String::from_utf8(rejects_csv(&rows).to_vec()).unwrap();
        assert!(
            text.starts_with("line,column,value,reason,record\n8,\"amount\","),
            "{text}"
        );
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let back: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(back.len(), 1);
        assert_eq!(&back[0][0], "8");
        assert_eq!(&back[0][2], "not, \"a\" number");
        assert_eq!(&back[0][4], "8,x,\"not, \"\"a\"\" number\"");
    }
}
