//! The custom format (`pg_dump -Fc`): one file of header, table of contents, then data blocks.
//!
//! Encodings (all little-endian): an Int is a sign byte and `int_size` magnitude bytes; a Str is
//! an Int length (-1 for NULL) and the bytes; an Offset is a flag byte and `off_size` position
//! bytes. A data block is a type byte, the dump id, then chunks (`Int len` + bytes) ending with
//! `Int 0`; the concatenated chunks are one zlib stream for gzip, or raw bytes.

use std::io::{self, Read, Write};

use flate2::{
    read::ZlibDecoder,
    write::{GzEncoder, ZlibEncoder},
};

use super::{
    ArchiveError, Compression, CreatedAt, Header, Layout, Offset, Section, TocEntry, Version,
};

const MAGIC: &[u8; 5] = b"PGDMP";
/// `archCustom` in the format byte.
const FORMAT_CUSTOM: u8 = 1;
/// The directory format's `toc.dat` says `archTar`, deliberately (pg_backup_directory.c).
const FORMAT_DIRECTORY: u8 = 3;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
/// Compressed bytes gathered before a chunk is emitted.
const CHUNK: usize = 64 * 1024;

fn put_int(out: &mut Vec<u8>, value: i64) {
    out.push(u8::from(value < 0));
    out.extend_from_slice(&(value.unsigned_abs() as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => put_int(out, -1),
        Some(s) => {
            put_int(out, s.len() as i64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn put_offset(out: &mut Vec<u8>, offset: Offset) {
    let (flag, position) = match offset {
        Offset::NotSet => (1u8, 0u64),
        Offset::Set(p) => (2, p),
        Offset::NoData => (3, 0),
    };
    out.push(flag);
    out.extend_from_slice(&position.to_le_bytes());
}

/// The header of a custom-format archive, for archive 1.14 (none or gzip) or 1.15/1.16.
pub fn header_bytes(header: &Header) -> Result<Vec<u8>, ArchiveError> {
    header_bytes_for(header, Layout::Custom)
}

/// The header for either layout (the directory format's `toc.dat` starts with it too).
pub fn header_bytes_for(header: &Header, layout: Layout) -> Result<Vec<u8>, ArchiveError> {
    let v = header.version;
    if v < Version::V1_14 || v > Version::V1_16 {
        return Err(ArchiveError::UnsupportedVersion(v));
    }
    if header.compression.minimum_version() > v {
        return Err(ArchiveError::Corrupt(format!(
            "{} compression needs archive {} or later",
            header.compression.name(),
            header.compression.minimum_version()
        )));
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(MAGIC);
    let format = match layout {
        Layout::Custom => FORMAT_CUSTOM,
        Layout::Directory => FORMAT_DIRECTORY,
    };
    out.extend_from_slice(&[v.major, v.minor, v.rev, 4, 8, format]);
    if v >= Version::V1_15 {
        out.push(match header.compression {
            Compression::None => 0,
            Compression::Gzip { .. } => 1,
            Compression::Lz4 => 2,
            Compression::Zstd => 3,
        });
    } else {
        put_int(
            &mut out,
            match header.compression {
                Compression::None => 0,
                Compression::Gzip { level } => level.map_or(-1, i64::from),
                _ => unreachable!("checked above"),
            },
        );
    }
    let t = header.created;
    for field in [t.sec, t.min, t.hour, t.mday, t.mon, t.year, t.isdst] {
        put_int(&mut out, field.into());
    }
    put_str(&mut out, Some(&header.database));
    put_str(&mut out, Some(&header.server_version));
    put_str(&mut out, Some(&header.dumper_version));
    Ok(out)
}

/// The table of contents of a custom-format archive.
pub fn toc_bytes(version: Version, entries: &[TocEntry]) -> Vec<u8> {
    toc_bytes_for(version, entries, Layout::Custom)
}

/// The name of an entry's data file in a directory archive, as the table of contents stores it
/// (without the compression suffix the file itself carries; see [`directory_file_suffix`]).
pub fn directory_data_name(dump_id: i32) -> String {
    format!("{dump_id}.dat")
}

/// The suffix pg_dump appends to directory-format data files for this compression.
pub fn directory_file_suffix(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "",
        Compression::Gzip { .. } => ".gz",
        Compression::Lz4 => ".lz4",
        Compression::Zstd => ".zst",
    }
}

/// The compression of a directory-format data file, from its name's suffix as pg_restore
/// reads it (the inverse of [`directory_file_suffix`]).
pub fn directory_file_compression(file_name: &str) -> Compression {
    if file_name.ends_with(".gz") {
        Compression::Gzip { level: None }
    } else if file_name.ends_with(".lz4") {
        Compression::Lz4
    } else if file_name.ends_with(".zst") {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The table of contents: the entry count, then each entry in the given order. Custom archives
/// end each entry with its data offset, directory archives with its data file name.
pub fn toc_bytes_for(version: Version, entries: &[TocEntry], layout: Layout) -> Vec<u8> {
    let mut out = Vec::new();
    put_int(&mut out, entries.len() as i64);
    for e in entries {
        put_int(&mut out, e.dump_id.into());
        put_int(&mut out, i64::from(e.had_dumper));
        put_str(&mut out, Some(&e.table_oid));
        put_str(&mut out, Some(&e.oid));
        put_str(&mut out, Some(&e.tag));
        put_str(&mut out, Some(&e.desc));
        put_int(&mut out, e.section as i64);
        put_str(&mut out, e.defn.as_deref());
        put_str(&mut out, e.drop_stmt.as_deref());
        put_str(&mut out, e.copy_stmt.as_deref());
        put_str(&mut out, e.namespace.as_deref());
        put_str(&mut out, e.tablespace.as_deref());
        if version >= Version::V1_14 {
            put_str(&mut out, e.tableam.as_deref());
        }
        if version >= Version::V1_16 {
            put_int(&mut out, e.relkind.into());
        }
        put_str(&mut out, e.owner.as_deref());
        put_str(&mut out, Some("false"));
        for dep in &e.dependencies {
            put_str(&mut out, Some(&dep.to_string()));
        }
        put_str(&mut out, None);
        match layout {
            Layout::Custom => put_offset(
                &mut out,
                if e.had_dumper {
                    e.offset
                } else {
                    Offset::NoData
                },
            ),
            Layout::Directory => {
                let file = e.had_dumper.then(|| {
                    e.file
                        .clone()
                        .unwrap_or_else(|| directory_data_name(e.dump_id))
                });
                put_str(&mut out, Some(file.as_deref().unwrap_or("")));
            }
        }
    }
    out
}

/// A compressor whose output is taken a chunk at a time: zlib (custom format's "gzip"), a gzip
/// file (directory format), an LZ4 frame, a Zstandard frame, or nothing.
enum Stream {
    Raw,
    Zlib(Box<ZlibEncoder<Vec<u8>>>),
    Gzip(Box<GzEncoder<Vec<u8>>>),
    Lz4(Box<lz4_flex::frame::FrameEncoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

/// Zstandard's own default level, as pg_dump uses when none is given.
const ZSTD_LEVEL: i32 = 3;

impl Stream {
    /// `file`: a directory archive's data file (a real gzip file) rather than a custom
    /// archive's block (a zlib stream); lz4 and zstd frames are the same in both.
    fn new(compression: Compression, file: bool) -> Result<Stream, ArchiveError> {
        let buffer = || Vec::with_capacity(CHUNK * 2);
        Ok(match compression {
            Compression::None => Stream::Raw,
            Compression::Gzip { level } => {
                let level = level.map_or(flate2::Compression::default(), flate2::Compression::new);
                if file {
                    Stream::Gzip(Box::new(GzEncoder::new(buffer(), level)))
                } else {
                    Stream::Zlib(Box::new(ZlibEncoder::new(buffer(), level)))
                }
            }
            Compression::Lz4 => Stream::Lz4(Box::new(lz4_flex::frame::FrameEncoder::new(buffer()))),
            Compression::Zstd => Stream::Zstd(Box::new(
                zstd::stream::write::Encoder::new(buffer(), ZSTD_LEVEL)
                    .map_err(ArchiveError::Decompress)?,
            )),
        })
    }

    /// Compresses `data`; returns the compressed bytes ready (at least a chunk), if any.
    fn write(&mut self, data: &[u8]) -> Vec<u8> {
        fn take(buffer: &mut Vec<u8>) -> Vec<u8> {
            if buffer.len() >= CHUNK {
                std::mem::take(buffer)
            } else {
                Vec::new()
            }
        }
        match self {
            Stream::Raw => data.to_vec(),
            Stream::Zlib(z) => {
                z.write_all(data).expect("writing to memory");
                take(z.get_mut())
            }
            Stream::Gzip(z) => {
                z.write_all(data).expect("writing to memory");
                take(z.get_mut())
            }
            Stream::Lz4(z) => {
                z.write_all(data).expect("writing to memory");
                take(z.get_mut())
            }
            Stream::Zstd(z) => {
                z.write_all(data).expect("writing to memory");
                take(z.get_mut())
            }
        }
    }

    /// Ends the stream; returns the compressed bytes not taken yet.
    fn finish(self) -> Vec<u8> {
        match self {
            Stream::Raw => Vec::new(),
            Stream::Zlib(z) => z.finish().expect("writing to memory"),
            Stream::Gzip(z) => z.finish().expect("writing to memory"),
            Stream::Lz4(z) => z.finish().expect("writing to memory"),
            Stream::Zstd(z) => z.finish().expect("writing to memory"),
        }
    }
}

/// One directory-format data file being written: a gzip file (not the custom format's zlib
/// stream), an LZ4 or Zstandard frame, or raw bytes. Emit what [`DataFile::write`] returns,
/// then [`DataFile::finish`].
pub struct DataFile {
    stream: Stream,
}

impl DataFile {
    pub fn new(compression: Compression) -> Result<DataFile, ArchiveError> {
        Ok(DataFile {
            stream: Stream::new(compression, true)?,
        })
    }

    /// Adds data; returns the bytes ready to be written (possibly none yet).
    pub fn write(&mut self, data: &[u8]) -> Vec<u8> {
        self.stream.write(data)
    }

    /// The rest of the file.
    pub fn finish(self) -> Vec<u8> {
        self.stream.finish()
    }
}

/// One table's data block being written. Feed it COPY text with [`DataBlock::write`] and emit
/// what each call returns, in order; [`DataBlock::finish`] returns the rest and the terminator.
/// Memory held: at most one chunk of compressed bytes.
pub struct DataBlock {
    stream: Stream,
}

fn chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_int(out, bytes.len() as i64);
        out.extend_from_slice(bytes);
    }
}

impl DataBlock {
    /// Starts the block of entry `dump_id`; returns the block and its header bytes.
    pub fn start(
        dump_id: i32,
        compression: Compression,
    ) -> Result<(DataBlock, Vec<u8>), ArchiveError> {
        let stream = Stream::new(compression, false)?;
        let mut head = vec![BLK_DATA];
        put_int(&mut head, dump_id.into());
        Ok((DataBlock { stream }, head))
    }

    /// Adds data; returns the framed bytes ready to be written (possibly none yet).
    pub fn write(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        chunk(&mut out, &self.stream.write(data));
        out
    }

    /// Ends the block: the remaining compressed bytes and the `Int 0` terminator.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        chunk(&mut out, &self.stream.finish());
        put_int(&mut out, 0);
        out
    }
}

/// A BLOBS block (large objects) of entry `dump_id`: its header bytes. Each large object
/// follows as a [`LargeObject`]; [`blobs_end`] ends the block.
pub fn blobs_head(dump_id: i32) -> Vec<u8> {
    let mut head = vec![BLK_BLOBS];
    put_int(&mut head, dump_id.into());
    head
}

/// The end of a BLOBS block: an oid of 0.
pub fn blobs_end() -> Vec<u8> {
    let mut out = Vec::new();
    put_int(&mut out, 0);
    out
}

/// One large object inside a BLOBS block: its oid, then its bytes as a data stream of their
/// own, framed and ended as a table's data is.
pub struct LargeObject;

impl LargeObject {
    /// Starts large object `oid`; returns the stream for its bytes and the header bytes. The
    /// oid is written as pg_dump writes it, a C `int` (negative from 2^31 on).
    pub fn start(oid: u32, compression: Compression) -> Result<(DataBlock, Vec<u8>), ArchiveError> {
        let stream = Stream::new(compression, false)?;
        let mut head = Vec::new();
        put_int(&mut head, i64::from(oid as i32));
        Ok((DataBlock { stream }, head))
    }
}

/// Reads a custom-format archive from any byte source, front to back.
pub struct Reader<R: Read> {
    input: R,
    pub header: Header,
    int_size: usize,
    off_size: usize,
    /// Custom (data blocks follow the TOC) or directory (`toc.dat`; data in separate files).
    pub layout: Layout,
    /// The kind of the block [`Reader::next_block`] last found.
    block_kind: u8,
}

impl<R: Read> Reader<R> {
    /// A reader positioned at a data block of a custom archive whose header was read before
    /// (a ranged read starting at the block's offset).
    pub fn at_block(input: R, header: Header) -> Reader<R> {
        Reader {
            input,
            int_size: header.int_size as usize,
            off_size: header.off_size as usize,
            header,
            layout: Layout::Custom,
            block_kind: BLK_DATA,
        }
    }

    /// Reads the header and the table of contents.
    pub fn open(mut input: R) -> Result<(Reader<R>, Vec<TocEntry>), ArchiveError> {
        let mut magic = [0u8; 5];
        read_exact(&mut input, &mut magic, "the header")?;
        if &magic != MAGIC {
            return Err(ArchiveError::NotAnArchive);
        }
        let mut fixed = [0u8; 6];
        read_exact(&mut input, &mut fixed, "the header")?;
        let version = Version {
            major: fixed[0],
            minor: fixed[1],
            rev: fixed[2],
        };
        if version.major != 1 || version < Version::V1_12 || version > Version::new(1, 16) {
            return Err(ArchiveError::UnsupportedVersion(version));
        }
        let (int_size, off_size) = (fixed[3] as usize, fixed[4] as usize);
        if !(1..=8).contains(&int_size) || !(1..=8).contains(&off_size) {
            return Err(ArchiveError::Corrupt(format!(
                "integer size {int_size} / offset size {off_size}"
            )));
        }
        let layout = match fixed[5] {
            FORMAT_CUSTOM => Layout::Custom,
            FORMAT_DIRECTORY => Layout::Directory,
            other => {
                return Err(ArchiveError::Corrupt(format!(
                    "format byte {other} is neither the custom nor the directory format"
                )));
            }
        };
        let mut reader = Reader {
            input,
            block_kind: BLK_DATA,
            header: Header {
                version,
                int_size: int_size as u8,
                off_size: off_size as u8,
                compression: Compression::None,
                created: CreatedAt::default(),
                database: String::new(),
                server_version: String::new(),
                dumper_version: String::new(),
            },
            int_size,
            off_size,
            layout,
        };
        reader.header.compression = if version >= Version::V1_15 {
            let mut byte = [0u8];
            read_exact(&mut reader.input, &mut byte, "the header")?;
            match byte[0] {
                0 => Compression::None,
                1 => Compression::Gzip { level: None },
                2 => Compression::Lz4,
                3 => Compression::Zstd,
                other => {
                    return Err(ArchiveError::Corrupt(format!(
                        "compression algorithm {other}"
                    )));
                }
            }
        } else {
            match reader.int("the header")? {
                0 => Compression::None,
                -1 => Compression::Gzip { level: None },
                level @ 1..=9 => Compression::Gzip {
                    level: Some(level as u32),
                },
                other => return Err(ArchiveError::Corrupt(format!("compression level {other}"))),
            }
        };
        let mut tm = [0i32; 7];
        for field in &mut tm {
            *field = reader.int("the header")? as i32;
        }
        reader.header.created = CreatedAt {
            sec: tm[0],
            min: tm[1],
            hour: tm[2],
            mday: tm[3],
            mon: tm[4],
            year: tm[5],
            isdst: tm[6],
        };
        reader.header.database = reader.string("the header")?.unwrap_or_default();
        reader.header.server_version = reader.string("the header")?.unwrap_or_default();
        reader.header.dumper_version = reader.string("the header")?.unwrap_or_default();
        let entries = reader.toc()?;
        Ok((reader, entries))
    }

    fn int(&mut self, what: &'static str) -> Result<i64, ArchiveError> {
        let mut sign = [0u8];
        read_exact(&mut self.input, &mut sign, what)?;
        let mut bytes = [0u8; 8];
        read_exact(&mut self.input, &mut bytes[..self.int_size], what)?;
        let magnitude = i64::try_from(u64::from_le_bytes(bytes))
            .map_err(|_| ArchiveError::Corrupt(format!("an integer out of range in {what}")))?;
        Ok(if sign[0] != 0 { -magnitude } else { magnitude })
    }

    /// A Str. Its length comes from the file, so nothing is allocated for it up front: the
    /// bytes are read as they come, and a length past the end of the file is `Truncated`.
    fn string(&mut self, what: &'static str) -> Result<Option<String>, ArchiveError> {
        let len = self.int(what)?;
        if len < 0 {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut bytes)
            .map_err(ArchiveError::Decompress)?;
        if bytes.len() as u64 != len as u64 {
            return Err(ArchiveError::Truncated(what));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ArchiveError::Corrupt(format!("text in {what} is not UTF-8")))
    }

    fn toc(&mut self) -> Result<Vec<TocEntry>, ArchiveError> {
        const WHAT: &str = "the table of contents";
        let count = self.int(WHAT)?;
        if !(0..=10_000_000).contains(&count) {
            return Err(ArchiveError::Corrupt(format!(
                "{count} table-of-contents entries"
            )));
        }
        let v = self.header.version;
        // The count too comes from the file: room for what a real archive may hold at first.
        let mut entries = Vec::with_capacity((count as usize).min(4096));
        for _ in 0..count {
            let dump_id = self.int(WHAT)? as i32;
            if dump_id <= 0 {
                return Err(ArchiveError::Corrupt(format!(
                    "entry id {dump_id} out of range"
                )));
            }
            let had_dumper = self.int(WHAT)? != 0;
            let table_oid = self.string(WHAT)?.unwrap_or_default();
            let oid = self.string(WHAT)?.unwrap_or_default();
            let tag = self.string(WHAT)?.unwrap_or_default();
            let desc = self.string(WHAT)?.unwrap_or_default();
            let section = Section::from_int(self.int(WHAT)?)?;
            let defn = self.string(WHAT)?;
            let drop_stmt = self.string(WHAT)?;
            let copy_stmt = self.string(WHAT)?;
            let namespace = self.string(WHAT)?;
            let tablespace = self.string(WHAT)?;
            let tableam = if v >= Version::V1_14 {
                self.string(WHAT)?
            } else {
                None
            };
            let relkind = if v >= Version::V1_16 {
                self.int(WHAT)? as u8
            } else {
                0
            };
            let owner = self.string(WHAT)?;
            let _with_oids = self.string(WHAT)?;
            let mut dependencies = Vec::new();
            while let Some(dep) = self.string(WHAT)? {
                dependencies.push(
                    dep.parse()
                        .map_err(|_| ArchiveError::Corrupt(format!("dependency {dep:?}")))?,
                );
            }
            let (offset, file) = match self.layout {
                Layout::Custom => {
                    let mut flag = [0u8];
                    read_exact(&mut self.input, &mut flag, WHAT)?;
                    let mut position = [0u8; 8];
                    read_exact(&mut self.input, &mut position[..self.off_size], WHAT)?;
                    let offset = match flag[0] {
                        1 => Offset::NotSet,
                        2 => Offset::Set(u64::from_le_bytes(position)),
                        3 => Offset::NoData,
                        other => return Err(ArchiveError::Corrupt(format!("offset flag {other}"))),
                    };
                    (offset, None)
                }
                Layout::Directory => {
                    let file = self.string(WHAT)?.filter(|f| !f.is_empty());
                    if file
                        .as_deref()
                        .is_some_and(|f| f.contains('/') || f.starts_with('.'))
                    {
                        return Err(ArchiveError::Corrupt(format!("data file name {file:?}")));
                    }
                    (
                        if file.is_some() {
                            Offset::NotSet
                        } else {
                            Offset::NoData
                        },
                        file,
                    )
                }
            };
            entries.push(TocEntry {
                dump_id,
                had_dumper,
                table_oid,
                oid,
                tag,
                desc,
                section,
                defn,
                drop_stmt,
                copy_stmt,
                namespace,
                tablespace,
                tableam,
                relkind,
                owner,
                dependencies,
                offset,
                file,
            });
        }
        Ok(entries)
    }

    /// The next data block's entry id, or `None` at the end of the archive (always `None` for
    /// a directory archive's `toc.dat`: its data lives in the files the entries name).
    pub fn next_block(&mut self) -> Result<Option<i32>, ArchiveError> {
        if self.layout == Layout::Directory {
            return Ok(None);
        }
        let mut kind = [0u8];
        match self.input.read(&mut kind) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(ArchiveError::Decompress(e)),
        }
        self.block_kind = kind[0];
        match kind[0] {
            BLK_DATA | BLK_BLOBS => Ok(Some(self.int("a data block")? as i32)),
            other => Err(ArchiveError::Corrupt(format!("data block type {other}"))),
        }
    }

    /// Reads past the block [`Reader::next_block`] found, whatever its kind (a BLOBS block
    /// holds one data stream per large object, each after its oid).
    pub fn skip_block(&mut self) -> Result<(), ArchiveError> {
        if self.block_kind == BLK_BLOBS {
            self.read_blobs(&mut NoBlobs).map(|_| ())
        } else {
            self.read_block_data(&mut io::sink()).map(|_| ())
        }
    }

    /// Reads the current block as a BLOBS block (large objects): for each object, its oid
    /// to [`BlobSink::start`], its bytes to the sink, then [`BlobSink::end`]. Returns how many.
    pub fn read_blobs(&mut self, sink: &mut impl BlobSink) -> Result<u64, ArchiveError> {
        let mut count = 0;
        loop {
            // Oids above 2^31 are stored as negative Ints.
            let oid = self.int("a large object's oid")? as u32;
            if oid == 0 {
                return Ok(count);
            }
            sink.start(oid).map_err(ArchiveError::Decompress)?;
            self.read_block_data(sink)?;
            sink.end().map_err(ArchiveError::Decompress)?;
            count += 1;
        }
    }

    /// Decompresses the current block's data into `sink`; returns the bytes written.
    pub fn read_block_data(&mut self, sink: &mut impl Write) -> Result<u64, ArchiveError> {
        let mut chunks = Chunks {
            reader: self,
            left: 0,
            done: false,
        };
        let written = match chunks.reader.header.compression {
            Compression::None => io::copy(&mut chunks, sink).map_err(ArchiveError::Decompress)?,
            Compression::Gzip { .. } => {
                let mut decoder = ZlibDecoder::new(&mut chunks);
                let n = io::copy(&mut decoder, sink).map_err(ArchiveError::Decompress)?;
                drop(decoder);
                n
            }
            Compression::Lz4 => {
                let mut decoder = lz4_flex::frame::FrameDecoder::new(&mut chunks);
                let n = io::copy(&mut decoder, sink).map_err(ArchiveError::Decompress)?;
                drop(decoder);
                n
            }
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::new(&mut chunks)
                    .map_err(ArchiveError::Decompress)?;
                let n = io::copy(&mut decoder, sink).map_err(ArchiveError::Decompress)?;
                drop(decoder);
                n
            }
        };
        // Consume whatever follows the compressed stream up to the block's terminator.
        io::copy(&mut chunks, &mut io::sink()).map_err(ArchiveError::Decompress)?;
        Ok(written)
    }
}

/// Where large objects go as they are read: each object's bytes are written between its
/// `start` and its `end`.
pub trait BlobSink: Write {
    fn start(&mut self, oid: u32) -> io::Result<()>;
    fn end(&mut self) -> io::Result<()>;
}

/// Large objects read and dropped.
struct NoBlobs;

impl Write for NoBlobs {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobSink for NoBlobs {
    fn start(&mut self, _oid: u32) -> io::Result<()> {
        Ok(())
    }

    fn end(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `oid file` lines of a directory archive's `blobs.toc` (or `blobs_<id>.toc`).
pub fn parse_blobs_toc(text: &str) -> Result<Vec<(u32, String)>, ArchiveError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (oid, file) = line.trim().split_once(' ').ok_or_else(|| {
                ArchiveError::Corrupt(format!("blobs toc line {line:?} is not `oid file`"))
            })?;
            let oid = oid
                .parse::<u32>()
                .map_err(|_| ArchiveError::Corrupt(format!("blobs toc line {line:?}: bad oid")))?;
            Ok((oid, file.to_string()))
        })
        .collect()
}

/// Decompresses a directory-format data file into `sink`, choosing the decoder by the file
/// name's suffix as pg_restore does (`.gz`, `.lz4`, `.zst`, or none).
pub fn decode_data_file(
    file_name: &str,
    bytes: impl Read,
    sink: &mut impl Write,
) -> Result<u64, ArchiveError> {
    match directory_file_compression(file_name) {
        Compression::Gzip { .. } => io::copy(&mut flate2::read::MultiGzDecoder::new(bytes), sink)
            .map_err(ArchiveError::Decompress),
        Compression::Lz4 => io::copy(&mut lz4_flex::frame::FrameDecoder::new(bytes), sink)
            .map_err(ArchiveError::Decompress),
        Compression::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(bytes).map_err(ArchiveError::Decompress)?;
            io::copy(&mut decoder, sink).map_err(ArchiveError::Decompress)
        }
        Compression::None => {
            let mut bytes = bytes;
            io::copy(&mut bytes, sink).map_err(ArchiveError::Decompress)
        }
    }
}

/// The chunk sequence of one data block as a byte stream (EOF at the `Int 0` terminator).
struct Chunks<'a, R: Read> {
    reader: &'a mut Reader<R>,
    left: usize,
    done: bool,
}

impl<R: Read> Read for Chunks<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let len = self
                .reader
                .int("a data chunk")
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if len <= 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = len as usize;
        }
        let want = buf.len().min(self.left);
        let n = self.reader.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside a data chunk",
            ));
        }
        self.left -= n;
        Ok(n)
    }
}

fn read_exact(
    input: &mut impl Read,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), ArchiveError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => ArchiveError::Truncated(what),
        _ => ArchiveError::Decompress(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<TocEntry> {
        let mut table = TocEntry::new(4, "TABLE", "t", Section::PreData);
        table.defn = Some("CREATE TABLE public.t (id integer);\n".into());
        table.namespace = Some("public".into());
        let mut data = TocEntry::new(5, "TABLE DATA", "t", Section::Data);
        data.had_dumper = true;
        data.offset = Offset::NotSet;
        data.copy_stmt = Some("COPY public.t (id) FROM stdin;\n".into());
        data.dependencies = vec![4];
        vec![table, data]
    }

    fn archive(compression: Compression, rows: &str) -> Vec<u8> {
        let version = if compression.minimum_version() > Version::V1_14 {
            Version::new(1, 15)
        } else {
            Version::V1_14
        };
        let header = Header {
            version,
            int_size: 4,
            off_size: 8,
            compression,
            created: CreatedAt::from_system_time(std::time::SystemTime::UNIX_EPOCH),
            database: "db".into(),
            server_version: "15.0".into(),
            dumper_version: "ferry".into(),
        };
        let mut out = header_bytes(&header).unwrap();
        out.extend(toc_bytes(version, &entries()));
        let (mut block, head) = DataBlock::start(5, compression).unwrap();
        out.extend(head);
        for line in rows.split_inclusive('\n') {
            out.extend(block.write(line.as_bytes()));
        }
        out.extend(block.finish());
        out
    }

    #[test]
    fn round_trip() {
        let rows: String = (0..50_000).map(|i| format!("{i}\n")).collect::<String>() + "\\.\n\n\n";
        for compression in [
            Compression::None,
            Compression::Gzip { level: None },
            Compression::Gzip { level: Some(9) },
        ] {
            let bytes = archive(compression, &rows);
            let (mut reader, toc) = Reader::open(&bytes[..]).unwrap();
            assert_eq!(toc, entries());
            assert_eq!(reader.header.database, "db");
            assert_eq!(reader.header.created.year, 70);
            assert_eq!(reader.next_block().unwrap(), Some(5));
            let mut data = Vec::new();
            reader.read_block_data(&mut data).unwrap();
            assert_eq!(String::from_utf8(data).unwrap(), rows);
            assert_eq!(reader.next_block().unwrap(), None);
        }
    }

    #[test]
    fn damage_is_reported() {
        let bytes = archive(Compression::Gzip { level: None }, "1\n");
        assert!(matches!(
            Reader::open(&b"PGDMQ"[..]),
            Err(ArchiveError::NotAnArchive)
        ));
        assert!(matches!(
            Reader::open(&bytes[..20]),
            Err(ArchiveError::Truncated(_))
        ));
        let mut future = bytes.clone();
        future[6] = 99;
        assert!(matches!(
            Reader::open(&future[..]),
            Err(ArchiveError::UnsupportedVersion(_))
        ));
    }

    #[test]
    fn directory_toc_round_trip() {
        let header = Header {
            version: Version::V1_14,
            int_size: 4,
            off_size: 8,
            compression: Compression::Gzip { level: None },
            created: CreatedAt::default(),
            database: "db".into(),
            server_version: "15".into(),
            dumper_version: "ferry".into(),
        };
        let mut toc = header_bytes_for(&header, Layout::Directory).unwrap();
        assert_eq!(toc[10], 3, "toc.dat says archTar");
        toc.extend(toc_bytes_for(Version::V1_14, &entries(), Layout::Directory));
        let (reader, read) = Reader::open(&toc[..]).unwrap();
        assert_eq!(reader.layout, Layout::Directory);
        assert_eq!(read[0].file, None);
        assert_eq!(read[1].file.as_deref(), Some("5.dat"));
        let mut file = DataFile::new(Compression::Gzip { level: None }).unwrap();
        let mut bytes = file.write(b"1\n2\n");
        bytes.extend(file.finish());
        let mut out = Vec::new();
        decode_data_file("5.dat.gz", &bytes[..], &mut out).unwrap();
        assert_eq!(out, b"1\n2\n");
    }

    /// A small deterministic generator (xorshift), so that a failure names its seed.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Opens `bytes` and reads every block: whatever it holds, an error or a result, never a
    /// panic (a crafted archive must fail as `Ferry.BadArchive`, not abort the process).
    fn read_all(bytes: &[u8]) -> Result<(), ArchiveError> {
        let (mut reader, _) = Reader::open(bytes)?;
        while reader.next_block()?.is_some() {
            let mut data = Vec::new();
            reader.read_block_data(&mut data)?;
        }
        Ok(())
    }

    #[test]
    fn lengths_read_from_an_archive_allocate_nothing_before_the_bytes_arrive() {
        // An archive with 8-byte integers whose first header string claims 2^62 bytes.
        let mut bytes = b"PGDMP".to_vec();
        bytes.extend([1, 14, 0, 8, 8, 1]);
        put_int8(&mut bytes, 0); // compression
        for _ in 0..7 {
            put_int8(&mut bytes, 0);
        }
        put_int8(&mut bytes, 1 << 62);
        bytes.extend(b"db");
        assert!(matches!(
            Reader::open(&bytes[..]),
            Err(ArchiveError::Truncated(_))
        ));
        // The most negative magnitude is refused, not negated.
        let mut bytes = b"PGDMP".to_vec();
        bytes.extend([1, 14, 0, 8, 8, 1]);
        bytes.push(1);
        bytes.extend(u64::MAX.to_le_bytes());
        assert!(Reader::open(&bytes[..]).is_err());
    }

    fn put_int8(out: &mut Vec<u8>, v: i64) {
        out.push(u8::from(v < 0));
        out.extend(v.unsigned_abs().to_le_bytes());
    }

    #[test]
    fn damaged_archives_fail_without_panicking() {
        let rows: String = (0..300).map(|i| format!("{i}\n")).collect::<String>() + "\\.\n\n";
        for (n, compression) in [
            Compression::None,
            Compression::Gzip { level: None },
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .enumerate()
        {
            let good = archive(compression, &rows);
            read_all(&good).unwrap();
            let mut noise = Noise(0x9e37_79b9_7f4a_7c15 + n as u64);
            for round in 0..3000 {
                let mut bytes = good.clone();
                match round % 5 {
                    // Eight-byte integers: every length after it is read from other bytes.
                    4 => bytes[8] = 8,
                    0 => bytes.truncate(noise.below(bytes.len())),
                    1 => {
                        for _ in 0..1 + noise.below(4) {
                            let at = noise.below(bytes.len());
                            bytes[at] = noise.next() as u8;
                        }
                    }
                    2 => {
                        // A large length where an integer was.
                        let at = 11 + noise.below(bytes.len() - 16);
                        bytes[at] = 0;
                        bytes[at + 1..at + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
                    }
                    _ => {
                        let at = noise.below(bytes.len());
                        let len = noise.below(64).min(bytes.len() - at);
                        bytes.drain(at..at + len);
                    }
                }
                let result = std::panic::catch_unwind(|| read_all(&bytes));
                assert!(result.is_ok(), "round {round} of {compression:?} panicked");
            }
        }
    }

    /// A directory archive's parts, damaged: its `toc.dat`, its `blobs.toc` text and its data
    /// files in each compression. Errors, never a panic.
    #[test]
    fn damaged_directory_archives_fail_without_panicking() {
        let header = Header {
            version: Version::new(1, 15),
            int_size: 4,
            off_size: 8,
            compression: Compression::Zstd,
            created: CreatedAt::default(),
            database: "db".into(),
            server_version: "15".into(),
            dumper_version: "ferry".into(),
        };
        let mut toc = header_bytes_for(&header, Layout::Directory).unwrap();
        toc.extend(toc_bytes_for(header.version, &entries(), Layout::Directory));
        Reader::open(&toc[..]).unwrap();
        let rows: String = (0..400).map(|i| format!("{i}\tname {i}\n")).collect();
        let data_files: Vec<(&str, Vec<u8>)> = [
            ("5.dat", Compression::None),
            ("5.dat.gz", Compression::Gzip { level: None }),
            ("5.dat.lz4", Compression::Lz4),
            ("5.dat.zst", Compression::Zstd),
        ]
        .into_iter()
        .map(|(name, compression)| {
            let mut file = DataFile::new(compression).unwrap();
            let mut bytes = file.write(rows.as_bytes());
            bytes.extend(file.finish());
            (name, bytes)
        })
        .collect();
        for (name, bytes) in &data_files {
            let mut out = Vec::new();
            decode_data_file(name, &bytes[..], &mut out).unwrap();
            assert_eq!(out, rows.as_bytes(), "{name}");
        }
        let blobs = "16384 blob_16384\n16385 blob_16385\n";
        assert_eq!(parse_blobs_toc(blobs).unwrap().len(), 2);
        let mut noise = Noise(0x51_7cc1_b727_220a);
        let damage = |good: &[u8], noise: &mut Noise| {
            let mut bytes = good.to_vec();
            match noise.below(3) {
                0 => bytes.truncate(noise.below(bytes.len())),
                1 => {
                    for _ in 0..1 + noise.below(4) {
                        let at = noise.below(bytes.len());
                        bytes[at] = noise.next() as u8;
                    }
                }
                _ => {
                    let at = noise.below(bytes.len());
                    let len = noise.below(32).min(bytes.len() - at);
                    bytes.drain(at..at + len);
                }
            }
            bytes
        };
        for round in 0..2000 {
            let bytes = damage(&toc, &mut noise);
            let opened = std::panic::catch_unwind(|| Reader::open(&bytes[..]).map(|_| ()));
            assert!(opened.is_ok(), "toc.dat round {round} panicked");
            let (name, good) = &data_files[round % data_files.len()];
            let bytes = damage(good, &mut noise);
            let decoded = std::panic::catch_unwind(|| {
                decode_data_file(name, &bytes[..], &mut Vec::new()).map(|_| ())
            });
            assert!(decoded.is_ok(), "{name} round {round} panicked");
            let text = String::from_utf8_lossy(&damage(blobs.as_bytes(), &mut noise)).into_owned();
            let parsed = std::panic::catch_unwind(|| parse_blobs_toc(&text).map(|_| ()));
            assert!(
                parsed.is_ok(),
                "blobs.toc round {round} panicked on {text:?}"
            );
        }
    }

    #[test]
    fn ints_match_the_format() {
        let mut out = Vec::new();
        put_int(&mut out, -1);
        put_int(&mut out, 16);
        assert_eq!(out, [1, 1, 0, 0, 0, 0, 16, 0, 0, 0]);
    }
}
