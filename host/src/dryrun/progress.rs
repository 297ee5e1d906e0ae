//! Progress while rows run: a bar on a terminal (rows done, rate, ETA), plain
//! lines every few seconds otherwise (a CI log, a file), nothing when quiet.
//! Everything goes to stderr: stdout is the summary's.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes.
pub enum Progress {
    /// A bar on the terminal.
    Bar(ProgressBar),
    /// A line now and then.
    Lines {
        /// Rows in the file, when counted beforehand.
        total: Option<u64>,
        /// When the run started.
        start: Instant,
        /// When the last line was printed.
        last: Instant,
    },
    /// Nothing but the messages.
    Quiet,
}

impl Progress {
    /// A bar if stderr is a terminal, else plain lines; `quiet`: neither.
    pub fn new(total: Option<u64>, quiet: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total.unwrap_or(0));
            let template = if total.is_some() {
                "{wide_bar} {human_pos}/{human_len} rows  {per_sec}  ETA {eta}"
            } else {
                "{spinner} {human_pos} rows  {per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            return Progress::Bar(bar);
        }
        let now = Instant::now();
        Progress::Lines {
            total,
            start: now,
            last: now,
        }
    }

    /// `done` rows are finished.
    pub fn update(&mut self, done: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(done),
            Progress::Lines { total, start, last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", line(done, *total, start.elapsed()));
                }
            }
            Progress::Quiet => {}
        }
    }

    /// Prints a message without breaking the bar.
    pub fn message(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }

    /// Removes the bar (the summary follows).
    pub fn finish(&self, done: u64) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines { total, start, .. } => {
                eprintln!("{}", line(done, *total, start.elapsed()));
            }
            Progress::Quiet => {}
        }
    }
}

fn line(done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    match total {
        Some(total) if rate > 0.0 && done < total => format!(
            "dry-run: {done}/{total} rows, {rate:.0} rows/s, ETA {:.0} s",
            (total - done) as f64 / rate
        ),
        Some(total) => format!("dry-run: {done}/{total} rows, {rate:.0} rows/s"),
        None => format!("dry-run: {done} rows, {rate:.0} rows/s"),
    }
}
