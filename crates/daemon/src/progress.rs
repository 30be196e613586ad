//! Progress of long fetches on a terminal: one status line on stderr, redrawn in place.
//! Nothing is drawn when stderr is not a terminal (CI, pipes, the daemon under systemd).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idgraph_sources::{NoProgress, Progress};

/// How often the line may be redrawn.
const REDRAW: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Counts {
    pages: u64,
    objects: u64,
    total: Option<u64>,
    done: bool,
}

/// Draws `idp 1200/5000 users (12 pages) · identity_center 900 users (9 pages)` on stderr.
pub struct TerminalProgress {
    state: Mutex<(BTreeMap<String, Counts>, Option<Instant>)>,
}

/// Progress on stderr if it is a terminal, else nothing.
pub fn for_stderr() -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(TerminalProgress {
            state: Mutex::new((BTreeMap::new(), None)),
        })
    } else {
        Arc::new(NoProgress)
    }
}

impl TerminalProgress {
    fn draw(sources: &BTreeMap<String, Counts>) {
        let parts: Vec<String> = sources
            .iter()
            .filter(|(_, c)| !c.done)
            .map(|(name, c)| match c.total {
                Some(total) => format!("{name} {}/{total} users ({} pages)", c.objects, c.pages),
                None => format!("{name} {} users ({} pages)", c.objects, c.pages),
            })
            .collect();
        let mut stderr = std::io::stderr().lock();
        // \r and clear-to-end-of-line: redraw in place.
        let _ = write!(stderr, "\r\x1b[2K{}", parts.join(" · "));
        let _ = stderr.flush();
    }
}

impl Progress for TerminalProgress {
    fn update(&self, source: &str, pages: u64, objects: u64, total: Option<u64>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (sources, last) = &mut *state;
        let counts = sources.entry(source.to_owned()).or_default();
        counts.pages = pages;
        counts.objects = objects;
        counts.total = total;
        if last.is_none_or(|t| t.elapsed() >= REDRAW) {
            *last = Some(Instant::now());
            Self::draw(sources);
        }
    }

    fn finish(&self, source: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (sources, _) = &mut *state;
        if let Some(counts) = sources.get_mut(source) {
            counts.done = true;
        }
        if sources.values().all(|c| c.done) {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        } else {
            Self::draw(sources);
        }
    }
}
