//! Walking a large JSON export without holding it in memory.
//!
//! [`JsonStream`] keeps a window of the file in a buffer it refills, walks the outer
//! structure (objects, arrays) itself, and hands each value it is asked for to serde_json
//! as a slice of that window: serde_json parses slices about 1.5× faster than readers, and
//! a 180 MB export then needs a megabyte of buffer, not 180. Errors carry the line and
//! column in the whole file, as serde_json would report them for a slice of all of it.

use std::io::Read;

use serde::de::DeserializeOwned;

/// A position-tracking window over a JSON text read from `R`.
pub(crate) struct JsonStream<R> {
    reader: R,
    buf: Vec<u8>,
    /// The next unread byte of `buf`.
    pos: usize,
    /// Whether `reader` is exhausted.
    eof: bool,
    /// The 1-based line of `buf[pos]`.
    line: usize,
    /// The 1-based column of `buf[pos]`.
    column: usize,
}

/// Why the text could not be walked: the reader failed, or the text is not what the
/// caller expects ("line L, column C: what").
#[derive(Debug)]
pub(crate) enum StreamError {
    Io(std::io::Error),
    Syntax(String),
}

pub(crate) type Result<T> = std::result::Result<T, StreamError>;

impl<R: Read> JsonStream<R> {
    /// How much is read at a time; a single value larger than this grows the buffer.
    const WINDOW: usize = 1 << 20;

    pub(crate) fn new(reader: R) -> Self {
        Self {
            reader,
            buf: Vec::with_capacity(Self::WINDOW),
            pos: 0,
            eof: false,
            line: 1,
            column: 1,
        }
    }

    /// Skips a UTF-8 byte order mark at the start, which editors on Windows add and
    /// serde_json does not accept; line and column stay as they were.
    pub(crate) fn skip_bom(&mut self) -> Result<()> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        while self.buf.len() - self.pos < BOM.len() && self.refill()? {}
        if self.buf[self.pos..].starts_with(BOM) {
            self.pos += BOM.len();
        }
        Ok(())
    }

    /// Reads more of the file behind what is left unread, growing the buffer when what is
    /// left fills it. Returns false at the end of the file.
    fn refill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(self.buf.capacity().max(Self::WINDOW));
        }
        let start = self.buf.len();
        self.buf.resize(self.buf.capacity(), 0);
        let read = loop {
            match self.reader.read(&mut self.buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(StreamError::Io(e));
                }
            }
        };
        self.buf.truncate(start + read);
        self.eof = read == 0;
        Ok(!self.eof)
    }

    /// Moves past `n` bytes, keeping the line and column.
    fn advance(&mut self, n: usize) {
        let passed = &self.buf[self.pos..self.pos + n];
        match passed.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.line += passed.iter().filter(|&&b| b == b'\n').count();
                self.column = n - last;
            }
            None => self.column += n,
        }
        self.pos += n;
    }

    /// "line L, column C: what" at the next unread byte.
    pub(crate) fn error(&self, what: impl std::fmt::Display) -> StreamError {
        StreamError::Syntax(format!(
            "line {}, column {}: {what}",
            self.line, self.column
        ))
    }

    /// The next byte that is not whitespace, without consuming it; `None` at the end.
    pub(crate) fn peek(&mut self) -> Result<Option<u8>> {
        loop {
            let skipped = self.buf[self.pos..]
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            match skipped {
                Some(n) => {
                    self.advance(n);
                    return Ok(Some(self.buf[self.pos]));
                }
                None => {
                    self.advance(self.buf.len() - self.pos);
                    if !self.refill()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Consumes `byte`, the next non-whitespace byte, or fails naming `expected`.
    pub(crate) fn expect(&mut self, byte: u8, expected: &str) -> Result<()> {
        match self.peek()? {
            Some(b) if b == byte => {
                self.advance(1);
                Ok(())
            }
            Some(_) => Err(self.error(format!("expected {expected}"))),
            None => Err(self.error(format!("EOF while parsing, expected {expected}"))),
        }
    }

    /// Parses the next value as a `T`.
    pub(crate) fn value<T: DeserializeOwned>(&mut self) -> Result<T> {
        if self.peek()?.is_none() {
            return Err(self.error("EOF while parsing a value"));
        }
        loop {
            let mut values =
                serde_json::Deserializer::from_slice(&self.buf[self.pos..]).into_iter::<T>();
            let parsed = values.next();
            let used = values.byte_offset();
            match parsed {
                // A number or literal ending where the window ends may go on in the file.
                Some(Ok(_)) if self.pos + used == self.buf.len() && self.refill()? => {}
                Some(Ok(value)) => {
                    self.advance(used);
                    return Ok(value);
                }
                Some(Err(e)) if e.is_eof() && self.refill()? => {}
                Some(Err(e)) => return Err(self.serde_error(&e)),
                None => return Err(self.error("EOF while parsing a value")),
            }
        }
    }

    /// Skips the next value, whatever it is.
    pub(crate) fn skip(&mut self) -> Result<()> {
        self.value::<serde::de::IgnoredAny>().map(|_| ())
    }

    /// Walks an object, calling `field` with each key; `field` must consume the value.
    /// The first error, the walk's or `field`'s, ends the walk.
    pub(crate) fn object<E: From<StreamError>>(
        &mut self,
        mut field: impl FnMut(&mut Self, String) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.expect(b'{', "`{`")?;
        if self.peek()? == Some(b'}') {
            self.advance(1);
            return Ok(());
        }
        loop {
            if self.peek()? != Some(b'"') {
                return Err(self.error("key must be a string").into());
            }
            let key: String = self.value()?;
            self.expect(b':', "`:`")?;
            field(self, key)?;
            match self.peek()? {
                Some(b',') => self.advance(1),
                Some(b'}') => {
                    self.advance(1);
                    return Ok(());
                }
                Some(_) => return Err(self.error("expected `,` or `}`").into()),
                None => return Err(self.error("EOF while parsing an object").into()),
            }
        }
    }

    /// Walks an array, calling `element` with each element's index; `element` must consume
    /// the element. The first error, the walk's or `element`'s, ends the walk.
    pub(crate) fn array<E: From<StreamError>>(
        &mut self,
        mut element: impl FnMut(&mut Self, usize) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.expect(b'[', "`[`")?;
        if self.peek()? == Some(b']') {
            self.advance(1);
            return Ok(());
        }
        for i in 0.. {
            element(self, i)?;
            match self.peek()? {
                Some(b',') => self.advance(1),
                Some(b']') => {
                    self.advance(1);
                    break;
                }
                Some(_) => return Err(self.error("expected `,` or `]`").into()),
                None => return Err(self.error("EOF while parsing a list").into()),
            }
        }
        Ok(())
    }

    /// Fails unless only whitespace is left.
    pub(crate) fn end(&mut self) -> Result<()> {
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    /// A serde_json error about the slice at `pos`, placed in the whole file.
    fn serde_error(&self, e: &serde_json::Error) -> StreamError {
        let message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = message.strip_suffix(&suffix).unwrap_or(&message);
        let (line, column) = if e.line() <= 1 {
            (self.line, self.column + e.column().saturating_sub(1))
        } else {
            (self.line + e.line() - 1, e.column())
        };
        StreamError::Syntax(format!("line {line}, column {column}: {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `chunk` bytes a call, to cross window boundaries.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn numbers(text: &str, chunk: usize) -> Result<(Vec<u64>, Option<String>)> {
        let mut s = JsonStream::new(Trickle {
            data: text.as_bytes(),
            chunk,
        });
        let mut numbers = Vec::new();
        let mut name = None;
        s.object(|s, key| match key.as_str() {
            "n" => s.array(|s, _| {
                numbers.push(s.value()?);
                Ok(())
            }),
            "name" => {
                name = Some(s.value()?);
                Ok(())
            }
            _ => s.skip(),
        })?;
        s.end()?;
        Ok((numbers, name))
    }

    #[test]
    fn values_split_across_reads_parse_whole() {
        let text = "{\"skip\": {\"a\": [1, 2, {\"b\": \"x\"}]}, \"n\": [12345, 6, 789012],\n \"name\": \"a\\\"b\"}";
        for chunk in [1, 2, 3, 7, 1000] {
            let (numbers, name) = numbers(text, chunk).unwrap();
            assert_eq!(numbers, [12345, 6, 789012], "chunk {chunk}");
            assert_eq!(name.as_deref(), Some("a\"b"));
        }
    }

    #[test]
    fn a_value_larger_than_the_window_grows_the_buffer() {
        let big = "x".repeat(3 * JsonStream::<&[u8]>::WINDOW);
        let text = format!("{{\"skip\": \"{big}\", \"name\": \"{big}\", \"n\": [7]}}");
        let (numbers, name) = numbers(&text, 64 * 1024).unwrap();
        assert_eq!(numbers, [7]);
        assert_eq!(name.map(|n| n.len()), Some(big.len()));
    }

    #[test]
    fn errors_name_the_line_and_column_in_the_whole_text() {
        let text = "{\"n\": [1,\n  2,\n     \"x\"]}";
        for chunk in [1, 4, 1000] {
            let Err(StreamError::Syntax(message)) = numbers(text, chunk) else {
                panic!("a string is not a number")
            };
            // Where serde_json stops reading the bad value: after the string.
            assert!(message.starts_with("line 3, column 8"), "{message}");
        }
        let Err(StreamError::Syntax(message)) = numbers("{\"n\": [1, 2}", 1000) else {
            panic!("unbalanced")
        };
        assert!(
            message.starts_with("line 1, column 12: expected `,` or `]`"),
            "{message}"
        );
        let Err(StreamError::Syntax(message)) = numbers("{\"n\": []} x", 1000) else {
            panic!("trailing")
        };
        assert!(message.contains("trailing characters"), "{message}");
        let Err(StreamError::Syntax(message)) = numbers("{\"n\": [1, 2", 3) else {
            panic!("truncated")
        };
        assert!(message.contains("EOF"), "{message}");
    }
}
