//! Line numbers of CSV records, counted from byte offsets.
//!
//! `csv::Position::line` undercounts after a quoted field that spans lines:
//! csv-core's fast path copies a quoted field's bytes without counting their
//! newlines, so every record after one would be reported a line too early.
//! Byte offsets are exact, so [`LineIndex`] watches the bytes as the CSV reader
//! pulls them and turns a record's byte offset into its line. A record's
//! offset may point at line-end bytes before it (the `\n` of the previous
//! record's CRLF, blank lines): those are skipped, so the line is the one the
//! record's first field is on.
//!
//! Invariant: offsets are asked for in increasing order (records come in file
//! order), so only the newlines of bytes read ahead but not yet reached are
//! kept: memory is bounded by the reader's buffer, not by the file.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

/// Newline offsets not yet passed, and the line reached so far.
#[derive(Debug)]
struct Seen {
    /// Offsets (and bytes) of the `\r` and `\n` read but not yet passed by
    /// [`LineIndex::line_at`].
    ahead: VecDeque<(u64, u8)>,
    /// Bytes read so far.
    read: u64,
    /// The line (1-based) of the last offset asked for.
    line: u64,
}

/// Shared between the [`Counting`] reader and the code reading records.
#[derive(Debug, Clone)]
pub struct LineIndex(Arc<Mutex<Seen>>);

/// A reader that records where its newlines are in a [`LineIndex`].
#[derive(Debug)]
pub struct Counting<R> {
    inner: R,
    index: LineIndex,
}

impl LineIndex {
    /// Wraps `inner`; the index answers for the bytes read through the wrapper.
    pub fn wrap<R: Read>(inner: R) -> (Counting<R>, LineIndex) {
        let index = LineIndex(Arc::new(Mutex::new(Seen {
            ahead: VecDeque::new(),
            read: 0,
            line: 1,
        })));
        (
            Counting {
                inner,
                index: index.clone(),
            },
            index,
        )
    }

    /// The 1-based line of the first byte at or after `offset` that ends no
    /// line. Offsets must not decrease from one call to the next (an earlier
    /// one answers the last line seen).
    pub fn line_at(&self, offset: u64) -> u64 {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut at = offset;
        while let Some(&(o, b)) = seen.ahead.front() {
            if o > at {
                break;
            }
            if o == at {
                // A line end right where the record starts: not the record yet.
                at += 1;
            }
            seen.ahead.pop_front();
            seen.line += u64::from(b == b'\n');
        }
        seen.line
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.index.0.lock().unwrap_or_else(PoisonError::into_inner);
        let start = seen.read;
        seen.ahead.extend(
            buf[..n]
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'\n' || b == b'\r')
                .map(|(i, &b)| (start + i as u64, b)),
        );
        seen.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_after_a_multi_line_quoted_field_get_their_own_line() {
        let text = "h1,h2\r\na,\"one\r\ntwo\r\nthree\"\r\nb,c\r\n\r\nd,e\n\nf,g\n";
        let (reader, index) = LineIndex::wrap(text.as_bytes());
        let mut csv = csv::ReaderBuilder::new().from_reader(reader);
        let lines: Vec<u64> = csv
            .records()
            .map(|r| {
                let r = r.expect("a record");
                index.line_at(r.position().expect("a position").byte())
            })
            .collect();
        // a on line 2 (its field runs to line 4), b on 5, a blank line, d on 7,
        // a blank line, f on 9.
        assert_eq!(lines, [2, 5, 7, 9]);
    }

    #[test]
    fn small_reads_count_the_same() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let (mut reader, index) = LineIndex::wrap(OneByte(b"x\n\"y\nz\"\nw\n"));
        std::io::copy(&mut reader, &mut std::io::sink()).expect("copy");
        assert_eq!(index.line_at(0), 1);
        assert_eq!(index.line_at(1), 2, "a line end at the offset is skipped");
        assert_eq!(index.line_at(2), 2);
        assert_eq!(index.line_at(8), 4);
        assert_eq!(
            index.line_at(3),
            4,
            "an earlier offset answers the last line"
        );
    }
}
