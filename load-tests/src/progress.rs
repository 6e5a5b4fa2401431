//! The live progress line on stderr: rewritten in place (`\r`) on a
//! terminal; to a file or a CI log, where `\r` piles every update into one
//! unreadable line, a whole line every [`LINE_EVERY`] instead.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a log (not a terminal) gets a progress line.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// How updates are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every update overwrites the last (`\r`), on one line.
    Terminal,
    /// A full line at most once per `every`; updates in between are dropped.
    Lines { every: Duration },
}

impl Mode {
    /// [`Mode::Terminal`] when `is_terminal`, else a line every [`LINE_EVERY`].
    pub fn choose(is_terminal: bool) -> Mode {
        if is_terminal {
            Mode::Terminal
        } else {
            Mode::Lines { every: LINE_EVERY }
        }
    }
}

/// The progress line's state.
#[derive(Debug)]
pub struct ProgressLine {
    mode: Mode,
    /// When the last line went out ([`Mode::Lines`]).
    last_line: Option<Instant>,
    /// Whether a `\r` line is open and needs a newline at the end.
    open: bool,
}

impl ProgressLine {
    /// A progress line on stderr, in the mode its kind of output calls for.
    pub fn to_stderr() -> ProgressLine {
        ProgressLine::new(Mode::choose(std::io::stderr().is_terminal()))
    }

    /// A progress line in `mode`.
    pub fn new(mode: Mode) -> ProgressLine {
        ProgressLine {
            mode,
            last_line: None,
            open: false,
        }
    }

    /// What to write for the update `text` at `now`, or nothing.
    pub fn render(&mut self, text: &str, now: Instant) -> Option<String> {
        match self.mode {
            Mode::Terminal => {
                self.open = true;
                // Spaces wipe the tail of a longer previous line.
                Some(format!("\r{text}      "))
            }
            Mode::Lines { every } => {
                if self
                    .last_line
                    .is_some_and(|last| now.duration_since(last) < every)
                {
                    return None;
                }
                self.last_line = Some(now);
                Some(format!("{text}\n"))
            }
        }
    }

    /// What ends the progress output: a newline after an open `\r` line.
    pub fn finish(&mut self) -> Option<&'static str> {
        std::mem::take(&mut self.open).then_some("\n")
    }

    /// Writes the update `text` to stderr if its mode says so.
    pub fn show(&mut self, text: &str) {
        if let Some(out) = self.render(text, Instant::now()) {
            write_stderr(&out);
        }
    }

    /// Ends the progress output on stderr.
    pub fn end(&mut self) {
        if let Some(out) = self.finish() {
            write_stderr(out);
        }
    }
}

fn write_stderr(text: &str) {
    let mut stderr = std::io::stderr().lock();
    // Progress is a courtesy: a closed stderr must not stop the run.
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_carriage_returns_and_a_log_gets_lines() {
        assert_eq!(Mode::choose(true), Mode::Terminal);
        assert_eq!(
            Mode::choose(false),
            Mode::Lines {
                every: Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn a_terminal_gets_every_update_in_place() {
        let mut progress = ProgressLine::new(Mode::Terminal);
        let t0 = Instant::now();
        assert_eq!(progress.render("1s", t0).as_deref(), Some("\r1s      "));
        assert_eq!(progress.render("2s", t0).as_deref(), Some("\r2s      "));
        assert_eq!(progress.finish(), Some("\n"));
        assert_eq!(progress.finish(), None);
    }

    #[test]
    fn a_log_gets_a_whole_line_every_few_seconds() {
        let mut progress = ProgressLine::new(Mode::Lines {
            every: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let written: Vec<Option<String>> = (0..12)
            .map(|secs| progress.render(&format!("{secs}s"), at(secs)))
            .collect();
        let lines: Vec<&str> = written.iter().flatten().map(String::as_str).collect();
        assert_eq!(lines, ["0s\n", "5s\n", "10s\n"]);
        assert!(lines.iter().all(|line| !line.contains('\r')));
        // Lines end themselves: nothing to close.
        assert_eq!(progress.finish(), None);
    }
}
