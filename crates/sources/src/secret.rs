//! A string that never prints: tokens and passwords travel in [`Secret`] so that no log
//! line, error message, panic or `Debug` dump can show them.
//!
//! A peer may still echo a secret back (a database that quotes the password in its error
//! message, a proxy that repeats the `Authorization` header): every secret idgraph holds is
//! also remembered process-wide, and [`scrub`] removes them all from any text before it is
//! stored, printed or logged.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// Secrets shorter than this are not scrubbed from text: replacing every `ab` in a message
/// would garble it and hide nothing worth hiding.
const MIN_SCRUBBED_LEN: usize = 4;

/// How many secrets [`scrub`] remembers: temporary database passwords are new on every
/// run, so the oldest are forgotten rather than kept for the life of the daemon.
const REMEMBERED: usize = 1024;

/// What [`scrub`] replaces a secret with.
pub const REDACTED: &str = "[redacted]";

static KNOWN: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Remembers `value` so that [`scrub`] removes it from text.
pub fn remember(value: &str) {
    if value.len() < MIN_SCRUBBED_LEN {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if known.iter().any(|k| k == value) {
        return;
    }
    if known.len() == REMEMBERED {
        known.pop_front();
    }
    known.push_back(value.to_owned());
}

/// `text` with every remembered secret replaced by `[redacted]`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    let mut text = Cow::Borrowed(text);
    // Longest first, so that a secret containing another is removed whole.
    let mut secrets: Vec<&String> = known.iter().filter(|k| text.contains(k.as_str())).collect();
    secrets.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = Cow::Owned(text.replace(secret.as_str(), REDACTED));
        }
    }
    text
}

/// A writer that scrubs every remembered secret from what passes through it: for log lines,
/// whatever a library put into them.
pub struct Scrubbing<W>(pub W);

impl<W: std::io::Write> std::io::Write for Scrubbing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(scrub(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A secret value. `Debug` and `Display` print `[redacted]`; only [`Secret::expose`]
/// gives the value, at the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value and remembers it for [`scrub`].
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        remember(&value);
        Self(value)
    }

    /// The value, for the request or connection that needs it. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret} {secret:?} {:?}", Some(&secret)),
            "[redacted] [redacted] Some([redacted])"
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn scrub_removes_every_secret_held() {
        let _token = Secret::new("tok-scrub-1234");
        let _password = Secret::new("pw-scrub-5678");
        let echoed = "FATAL: password \"pw-scrub-5678\" rejected for token tok-scrub-1234";
        assert_eq!(
            scrub(echoed),
            "FATAL: password \"[redacted]\" rejected for token [redacted]"
        );
        assert!(matches!(scrub("nothing secret"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_scrubbing_writer_passes_everything_else_through() {
        use std::io::Write as _;
        let _secret = Secret::new("tok-writer-9876");
        let mut out = Scrubbing(Vec::new());
        write!(out, "token tok-writer-9876 sent").expect("writes");
        assert_eq!(
            String::from_utf8(out.0).expect("utf-8"),
            "token [redacted] sent"
        );
    }

    #[test]
    fn a_secret_containing_another_is_removed_whole() {
        let _short = Secret::new("abcd");
        let _long = Secret::new("xxabcdyy-scrub");
        assert_eq!(
            scrub("[xxabcdyy-scrub] [abcd]"),
            "[[redacted]] [[redacted]]"
        );
    }
}
