//! CSV as PostgreSQL's `COPY ... (FORMAT csv)` reads it: records found without parsing fields
//! (a quote-aware scan for line ends), batches of whole records for one `COPY` each, the header
//! split into names. Pure: bytes in, records out.
//!
//! The rules are the server's (copyfromparse.c): a quote opens and closes a quoted field; inside
//! one, the escape character (the quote itself by default) makes the next quote literal, and line
//! ends are data. A record ends at a line feed outside quotes (`\r\n` included).
//!
//! ferry keeps its own splitter rather than the `csv` crate's reader because the records must be
//! cut exactly where the server will cut them (the server parses the fields; ferry only finds
//! record boundaries, to batch, count lines and set bad rows aside), with the server's
//! dialect options (any single-byte quote and escape, LATIN1 bytes), without decoding fields.
//! The `csv` crate writes the rejects file, where a standard CSV writer is what is wanted.

use std::io::Read;

use bytes::{Bytes, BytesMut};

/// How a file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: u8,
    /// The unquoted text that means NULL (empty by default, as in `COPY ... CSV`).
    pub null: String,
    /// Whether the first record names the columns.
    pub header: bool,
    pub encoding: Encoding,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: String::new(),
            header: true,
            encoding: Encoding::Utf8,
        }
    }
}

/// The character encoding of a file (the server converts; ferry only splits records, which
/// needs no decoding in either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a byte order mark.
    Utf8,
    Latin1,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Encoding> {
        match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "utf8" | "utf8bom" => Some(Encoding::Utf8),
            "latin1" | "iso88591" => Some(Encoding::Latin1),
            _ => None,
        }
    }

    /// The name `COPY ... (ENCODING ...)` takes.
    pub fn copy_name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF8",
            Encoding::Latin1 => "LATIN1",
        }
    }

    /// The text of a field of the record at `line`.
    fn decode(self, bytes: &[u8], line: u64) -> Result<String, CsvError> {
        match self {
            Encoding::Utf8 => String::from_utf8(bytes.to_vec()).map_err(|e| CsvError {
                line,
                reason: format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
            }),
            Encoding::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
        }
    }
}

/// Where one record sits in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Its bytes in [`Batch::data`], line end included.
    pub start: u32,
    pub end: u32,
    /// The line of the file it starts on (1-based, counting the header and blank lines).
    pub line: u64,
    /// Physical lines it spans (more than one when a quoted field holds line ends).
    pub lines: u32,
}

/// Whole records of a file, in order.
#[derive(Debug, Clone)]
pub struct Batch {
    pub data: Bytes,
    pub records: Vec<Record>,
    /// Where the file goes on after this batch: its byte offset (in the decompressed stream)
    /// and the line there.
    pub end_offset: u64,
    pub next_line: u64,
}

/// PostgreSQL before 18 ends `COPY` data at a line holding only `\.`, even in CSV; such a
/// record is sent quoted (the same value) so that no row after it is lost.
fn quoted_end_marker(record: &[u8]) -> &'static [u8] {
    match &record[2..] {
        b"\r\n" => b"\"\\.\"\r\n",
        b"\n" => b"\"\\.\"\n",
        _ => b"\"\\.\"",
    }
}

fn is_end_marker(record: &[u8]) -> bool {
    matches!(record, b"\\." | b"\\.\n" | b"\\.\r\n")
}

impl Batch {
    /// The bytes of record `i`, line end included.
    pub fn record(&self, i: usize) -> &[u8] {
        let r = self.records[i];
        &self.data[r.start as usize..r.end as usize]
    }

    /// Records `range` as `COPY` data: runs of adjacent records share one buffer.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut run: Option<(usize, usize)> = None;
        for r in &self.records[range] {
            let (start, end) = (r.start as usize, r.end as usize);
            if is_end_marker(&self.data[start..end]) {
                if let Some((s, e)) = run.take() {
                    out.push(self.data.slice(s..e));
                }
                out.push(Bytes::from_static(quoted_end_marker(
                    &self.data[start..end],
                )));
                continue;
            }
            run = match run {
                Some((s, e)) if e == start => Some((s, end)),
                Some((s, e)) => {
                    out.push(self.data.slice(s..e));
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((s, e)) = run {
            out.push(self.data.slice(s..e));
        }
        out
    }
}

/// A file that is not CSV as declared: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: u64,
    pub reason: String,
}

/// Reads records from a byte source and hands them out in batches of about `batch_bytes`.
pub struct Splitter<R> {
    input: R,
    dialect: Dialect,
    batch_bytes: usize,
    max_record_bytes: usize,
    /// Bytes read and not handed out yet; it starts at a record boundary.
    buffer: BytesMut,
    /// How far `buffer` has been scanned, and where the record being scanned starts.
    scanned: usize,
    pending: usize,
    /// Complete records in `buffer`.
    records: Vec<Record>,
    in_quote: bool,
    /// The line at `scanned`, the line the pending record started on, and where the open quote
    /// was opened.
    line: u64,
    record_line: u64,
    quote_line: u64,
    eof: bool,
    bom_checked: bool,
    /// Lines with nothing on them, skipped.
    pub blank_lines: u64,
    /// Bytes read from the input (after decompression).
    pub bytes_read: u64,
    /// The offset in the file of the input's first byte.
    origin: u64,
}

const READ_SIZE: usize = 256 * 1024;

impl<R: Read> Splitter<R> {
    pub fn new(input: R, dialect: Dialect, batch_bytes: usize, max_record_bytes: usize) -> Self {
        Splitter {
            input,
            dialect,
            batch_bytes,
            max_record_bytes,
            buffer: BytesMut::new(),
            scanned: 0,
            pending: 0,
            records: Vec::new(),
            in_quote: false,
            line: 1,
            record_line: 1,
            quote_line: 1,
            eof: false,
            bom_checked: false,
            blank_lines: 0,
            bytes_read: 0,
            origin: 0,
        }
    }

    /// For input that starts at `offset` of the file, on line `line` (a resumed import: no
    /// byte order mark there, and no header).
    pub fn resumed_at(mut self, offset: u64, line: u64) -> Self {
        self.origin = offset;
        self.line = line;
        self.record_line = line;
        self.bom_checked = offset > 0;
        self
    }

    /// The header's names and its line, or `None` when the file holds no record at all.
    pub fn header(&mut self) -> Result<Option<(Vec<String>, u64)>, CsvError> {
        while self.records.is_empty() {
            if !self.fill()? {
                return Ok(None);
            }
        }
        let first = self.records.remove(0);
        let line = first.line;
        let bytes = &self.buffer[first.start as usize..first.end as usize];
        let names = fields(bytes, &self.dialect, line)?
            .into_iter()
            .map(|f| self.dialect.encoding.decode(&f, line))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((names, line)))
    }

    /// The next batch of whole records, or `None` at the end of the file.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, CsvError> {
        loop {
            if !self.records.is_empty() && (self.pending >= self.batch_bytes || self.eof) {
                let data = self.buffer.split_to(self.pending).freeze();
                self.scanned -= self.pending;
                self.pending = 0;
                let records = std::mem::take(&mut self.records);
                let end_offset = self.origin + self.bytes_read - self.buffer.len() as u64;
                return Ok(Some(Batch {
                    data,
                    records,
                    end_offset,
                    next_line: self.record_line,
                }));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Reads and scans more input; `false` once the input is exhausted and scanned.
    fn fill(&mut self) -> Result<bool, CsvError> {
        if self.eof {
            return Ok(false);
        }
        let old = self.buffer.len();
        self.buffer.resize(old + READ_SIZE, 0);
        let n = loop {
            match self.input.read(&mut self.buffer[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buffer.truncate(old);
                    return Err(CsvError {
                        line: self.line,
                        reason: format!("reading the file failed: {e}"),
                    });
                }
            }
        };
        self.buffer.truncate(old + n);
        self.bytes_read += n as u64;
        if !self.bom_checked {
            if self.buffer.len() < 3 && n > 0 {
                return Ok(true);
            }
            self.bom_checked = true;
            if self.buffer.starts_with(b"\xEF\xBB\xBF") {
                let _ = self.buffer.split_to(3);
            } else if self.buffer.starts_with(b"\xFF\xFE") || self.buffer.starts_with(b"\xFE\xFF") {
                return Err(CsvError {
                    line: 1,
                    reason: "the file is UTF-16 (it starts with a UTF-16 byte order mark); \
                             save it as UTF-8"
                        .into(),
                });
            }
        }
        self.scan();
        if n == 0 {
            self.eof = true;
            if self.in_quote {
                return Err(CsvError {
                    line: self.quote_line,
                    reason: "unterminated quoted field: the quote opened on this line is never \
                             closed"
                        .into(),
                });
            }
            if self.pending < self.buffer.len() {
                let end = self.buffer.len();
                self.end_record(end);
            }
            return Ok(!self.records.is_empty());
        }
        if self.buffer.len() - self.pending > self.max_record_bytes {
            return Err(CsvError {
                line: self.record_line,
                reason: format!(
                    "a record longer than {} bytes ({})",
                    self.max_record_bytes,
                    if self.in_quote {
                        "a quoted field that is never closed?"
                    } else {
                        "no line feed: files whose lines end in a carriage return alone are \
                         not supported"
                    }
                ),
            });
        }
        Ok(true)
    }

    /// Scans `buffer[scanned..]` for the ends of records.
    fn scan(&mut self) {
        let (quote, escape) = (self.dialect.quote, self.dialect.escape);
        let mut i = self.scanned;
        let len = self.buffer.len();
        while i < len {
            if self.in_quote {
                let rest = &self.buffer[i..];
                let found = if escape == quote {
                    memchr::memchr2(quote, b'\n', rest)
                } else {
                    memchr::memchr3(quote, escape, b'\n', rest)
                };
                let Some(off) = found else {
                    i = len;
                    break;
                };
                let at = i + off;
                let c = self.buffer[at];
                if c == b'\n' {
                    self.line += 1;
                    i = at + 1;
                } else if c == escape && escape != quote {
                    if at + 1 >= len {
                        // What it escapes is not read yet.
                        i = at;
                        break;
                    }
                    let next = self.buffer[at + 1];
                    i = if next == quote || next == escape {
                        at + 2
                    } else {
                        at + 1
                    };
                } else {
                    self.in_quote = false;
                    i = at + 1;
                }
            } else {
                let Some(off) = memchr::memchr2(quote, b'\n', &self.buffer[i..]) else {
                    i = len;
                    break;
                };
                let at = i + off;
                if self.buffer[at] == b'\n' {
                    self.line += 1;
                    self.end_record(at + 1);
                } else {
                    self.in_quote = true;
                    self.quote_line = self.line;
                }
                i = at + 1;
            }
        }
        self.scanned = i;
    }

    /// The pending record ends at `end` (a blank line is counted and left out).
    fn end_record(&mut self, end: usize) {
        let bytes = &self.buffer[self.pending..end];
        if matches!(bytes, b"\n" | b"\r\n" | b"\r") {
            self.blank_lines += 1;
        } else {
            let lines = (self.line - self.record_line).max(1);
            self.records.push(Record {
                start: self.pending as u32,
                end: end as u32,
                line: self.record_line,
                lines: lines as u32,
            });
        }
        self.pending = end;
        self.record_line = self.line;
    }
}

/// The fields of the record at `line` (for the header): quotes removed, escapes resolved.
pub fn fields(record: &[u8], dialect: &Dialect, line: u64) -> Result<Vec<Vec<u8>>, CsvError> {
    let record = record
        .strip_suffix(b"\n")
        .map(|r| r.strip_suffix(b"\r").unwrap_or(r))
        .unwrap_or(record);
    let mut out = Vec::new();
    let mut field = Vec::new();
    let mut in_quote = false;
    let mut i = 0;
    while i < record.len() {
        let c = record[i];
        if in_quote {
            if c == dialect.escape
                && i + 1 < record.len()
                && (record[i + 1] == dialect.quote || record[i + 1] == dialect.escape)
                && (dialect.escape != dialect.quote || record[i + 1] == dialect.quote)
            {
                field.push(record[i + 1]);
                i += 2;
                continue;
            }
            if c == dialect.quote {
                in_quote = false;
            } else {
                field.push(c);
            }
        } else if c == dialect.quote {
            in_quote = true;
        } else if c == dialect.delimiter {
            out.push(std::mem::take(&mut field));
        } else {
            field.push(c);
        }
        i += 1;
    }
    if in_quote {
        return Err(CsvError {
            line,
            reason: "unterminated quoted field".into(),
        });
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, to cross every buffer boundary.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn split(
        text: &[u8],
        dialect: Dialect,
        step: usize,
    ) -> (Vec<String>, Vec<(String, u64, u32)>, u64) {
        let mut s = Splitter::new(Trickle(text, step), dialect.clone(), 16, 1 << 20);
        let header = if dialect.header {
            s.header().unwrap().map(|h| h.0).unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut records = Vec::new();
        while let Some(batch) = s.next_batch().unwrap() {
            for (i, r) in batch.records.iter().enumerate() {
                let bytes: Vec<u8> = batch.slice(i..i + 1).concat();
                records.push((
                    String::from_utf8_lossy(&bytes).into_owned(),
                    r.line,
                    r.lines,
                ));
            }
        }
        (header, records, s.blank_lines)
    }

    #[test]
    fn records_follow_the_servers_rules() {
        let text = b"\xEF\xBB\xBFid,\"na,me\"\r\n1,\"two\r\nlines\"\r\n\r\n2,\"say \"\"hi\"\"\"\r\n\\.\r\n3,last";
        for step in [1, 2, 3, 7, 1000] {
            let (header, records, blank) = split(text, Dialect::default(), step);
            assert_eq!(header, ["id", "na,me"], "step {step}");
            assert_eq!(
                records,
                [
                    ("1,\"two\r\nlines\"\r\n".to_string(), 2, 2),
                    ("2,\"say \"\"hi\"\"\"\r\n".to_string(), 5, 1),
                    ("\"\\.\"\r\n".to_string(), 6, 1),
                    ("3,last".to_string(), 7, 1),
                ],
                "step {step}"
            );
            assert_eq!(blank, 1);
        }
    }

    #[test]
    fn a_separate_escape_character_hides_quotes() {
        let dialect = Dialect {
            escape: b'\\',
            header: false,
            ..Dialect::default()
        };
        let text = b"1,\"a\\\"\nb\\\\\"\n2,\"x\"\n";
        for step in [1, 2, 100] {
            let (_, records, _) = split(text, dialect.clone(), step);
            assert_eq!(records.len(), 2, "step {step}");
            assert_eq!(records[0].0, "1,\"a\\\"\nb\\\\\"\n");
            assert_eq!((records[1].1, records[1].2), (3, 1));
        }
    }

    #[test]
    fn malformed_files_are_named_by_line() {
        let mut s = Splitter::new(
            &b"a,b\n1,2\n3,\"open\n4,5\n"[..],
            Dialect::default(),
            16,
            1 << 20,
        );
        s.header().unwrap();
        let err = loop {
            match s.next_batch() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("an unterminated quote was accepted"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.line, 3);
        assert!(err.reason.contains("unterminated"), "{err}");
        let mut s = Splitter::new(&b"\xFF\xFEa\0"[..], Dialect::default(), 16, 1 << 20);
        assert!(s.header().unwrap_err().reason.contains("UTF-16"));
        let mut s = Splitter::new(&b""[..], Dialect::default(), 16, 1 << 20);
        assert_eq!(s.header().unwrap(), None);
        let long = vec![b'x'; 4096];
        let mut s = Splitter::new(&long[..], Dialect::default(), 16, 1024);
        assert!(s.header().unwrap_err().reason.contains("longer than"));
    }

    /// Arbitrary input built from the bytes that matter to the splitter, cut at every buffer
    /// size: an error or records, never a panic, and no record longer than the limit plus one
    /// read (the limit bounds memory: it is checked each time more input is needed).
    #[test]
    fn arbitrary_input_splits_or_fails_without_panicking() {
        let alphabet = b"a,\"\r\n\\\t;\xef\xbb\xbf\xff0";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let len = (next() % 200) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let dialect = Dialect {
                header: round % 2 == 0,
                ..Dialect::default()
            };
            let step = 1 + (next() % 7) as usize;
            let limit = 8 + (next() % 64) as usize;
            let outcome = std::panic::catch_unwind(|| {
                let mut s = Splitter::new(Trickle(&text, step), dialect.clone(), 16, limit);
                if dialect.header {
                    s.header()?;
                }
                while let Some(batch) = s.next_batch()? {
                    for (i, record) in batch.records.iter().enumerate() {
                        let bytes: usize = batch.slice(i..i + 1).iter().map(|b| b.len()).sum();
                        assert!(
                            bytes <= limit + step,
                            "a record of {bytes} bytes past the limit {limit}: {record:?}"
                        );
                    }
                }
                Ok::<_, CsvError>(())
            });
            assert!(outcome.is_ok(), "round {round} panicked on {text:?}");
        }
    }

    #[test]
    fn fields_unquote_doubled_quotes() {
        let fields = fields(b"\"a\"\"b\",c,\"\"\r\n", &Dialect::default(), 1).unwrap();
        assert_eq!(fields, [b"a\"b".to_vec(), b"c".to_vec(), b"".to_vec()]);
    }
}
