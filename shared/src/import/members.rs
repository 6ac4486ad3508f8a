//! Decompression that knows where a compressed object can be entered again: a gzip file is a
//! series of members and a zstd file a series of frames, each of which decompresses on its own.
//! The decoder reads them one after another (as `MultiGzDecoder` and zstd's reader do) and
//! records where each starts, in the object and in the decompressed stream, so that an import
//! resumed in a later invocation reads the object from the last such start before where it
//! stopped instead of decompressing everything before it again. A file written as one member
//! or frame (what `gzip` and `zstd` write by default) has one start, at 0; `bgzip`,
//! `pigz --independent` and `zstd --rsyncable`-style writers, or files concatenated from parts,
//! have many.

use std::{
    io::{self, BufRead, Read},
    sync::{Arc, Mutex},
};

use super::reader::Compression;

/// Where a member (gzip) or frame (zstd) starts: its offset in the object, and the offset of
/// its first byte in the decompressed stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EntryPoint {
    pub(crate) compressed: u64,
    pub(crate) decompressed: u64,
}

/// The starts seen so far, shared with whoever records a position to resume from.
pub(crate) type EntryPoints = Arc<Mutex<Vec<EntryPoint>>>;

/// The last start at or before `offset` of the decompressed stream.
pub(crate) fn entry_before(points: &EntryPoints, offset: u64) -> Option<EntryPoint> {
    let points = points.lock().unwrap_or_else(|e| e.into_inner());
    points
        .iter()
        .rev()
        .find(|p| p.decompressed <= offset)
        .copied()
}

/// A `BufRead` that counts the bytes consumed from it.
struct Counted<R> {
    inner: R,
    consumed: u64,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

enum Stage<R: BufRead> {
    Between(Counted<R>),
    Gzip(Box<flate2::bufread::GzDecoder<Counted<R>>>),
    Zstd(zstd::stream::read::Decoder<'static, Counted<R>>),
    Failed,
}

/// Decompresses every member or frame of `input`, which starts at `start` (a start recorded
/// before, or 0), recording each start in `points`.
pub(crate) struct Members<R: BufRead> {
    stage: Stage<R>,
    kind: Compression,
    start: EntryPoint,
    decompressed: u64,
    points: EntryPoints,
}

impl<R: BufRead> Members<R> {
    pub(crate) fn new(input: R, kind: Compression, start: EntryPoint, points: EntryPoints) -> Self {
        Members {
            stage: Stage::Between(Counted {
                inner: input,
                consumed: 0,
            }),
            kind,
            start,
            decompressed: start.decompressed,
            points,
        }
    }
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.stage, Stage::Failed) {
                Stage::Between(mut input) => {
                    if input.fill_buf()?.is_empty() {
                        self.stage = Stage::Between(input);
                        return Ok(0);
                    }
                    let point = EntryPoint {
                        compressed: self.start.compressed + input.consumed,
                        decompressed: self.decompressed,
                    };
                    self.points
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(point);
                    self.stage = match self.kind {
                        Compression::Gzip => {
                            Stage::Gzip(Box::new(flate2::bufread::GzDecoder::new(input)))
                        }
                        Compression::Zstd => Stage::Zstd(
                            zstd::stream::read::Decoder::with_buffer(input)?.single_frame(),
                        ),
                        Compression::None => {
                            return Err(io::Error::other("Members reads compressed input only"));
                        }
                    };
                }
                Stage::Gzip(mut decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        self.decompressed += n as u64;
                        self.stage = Stage::Gzip(decoder);
                        return Ok(n);
                    }
                    self.stage = Stage::Between(decoder.into_inner());
                }
                Stage::Zstd(mut decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        self.decompressed += n as u64;
                        self.stage = Stage::Zstd(decoder);
                        return Ok(n);
                    }
                    self.stage = Stage::Between(decoder.finish());
                }
                Stage::Failed => return Err(io::Error::other("the decoder failed before")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            out.extend(e.finish().unwrap());
        }
        out
    }

    fn zstd(parts: &[&[u8]]) -> Vec<u8> {
        parts
            .iter()
            .flat_map(|p| zstd::stream::encode_all(*p, 1).unwrap())
            .collect()
    }

    fn read(bytes: &[u8], kind: Compression, start: EntryPoint) -> (Vec<u8>, Vec<EntryPoint>) {
        let points = EntryPoints::default();
        let mut out = Vec::new();
        Members::new(
            io::BufReader::with_capacity(7, &bytes[start.compressed as usize..]),
            kind,
            start,
            points.clone(),
        )
        .read_to_end(&mut out)
        .unwrap();
        let points = points.lock().unwrap().clone();
        (out, points)
    }

    #[test]
    fn every_member_and_frame_is_read_and_each_start_recorded() {
        let parts: [&[u8]; 3] = [b"id,name\n1,a\n", b"2,b\n3,c\n", b"4,d\n"];
        for (kind, bytes) in [
            (Compression::Gzip, gzip(&parts)),
            (Compression::Zstd, zstd(&parts)),
        ] {
            let (out, points) = read(&bytes, kind, EntryPoint::default());
            assert_eq!(out, parts.concat(), "{kind:?}");
            assert_eq!(points.len(), 3, "{kind:?}");
            assert_eq!(points[0], EntryPoint::default());
            assert_eq!(points[1].decompressed, parts[0].len() as u64);
            assert_eq!(
                points[2].decompressed,
                (parts[0].len() + parts[1].len()) as u64
            );
            // Entered again at a recorded start, the rest reads the same.
            let (rest, again) = read(&bytes, kind, points[1]);
            assert_eq!(rest, [parts[1], parts[2]].concat(), "{kind:?}");
            assert_eq!(again[1], points[2], "{kind:?}");
        }
    }

    #[test]
    fn the_last_start_before_an_offset() {
        let points = EntryPoints::default();
        points.lock().unwrap().extend([
            EntryPoint::default(),
            EntryPoint {
                compressed: 40,
                decompressed: 100,
            },
            EntryPoint {
                compressed: 80,
                decompressed: 200,
            },
        ]);
        assert_eq!(entry_before(&points, 99).unwrap().compressed, 0);
        assert_eq!(entry_before(&points, 100).unwrap().compressed, 40);
        assert_eq!(entry_before(&points, 250).unwrap().compressed, 80);
    }
}
