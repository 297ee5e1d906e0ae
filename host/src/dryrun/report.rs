//! What a dry run found: one [`Decision`] per row, written to the decisions
//! file in row order, and the [`Summary`] they add up to.
//!
//! Invariants: decisions are fed to [`Summary::add`] in row order, exactly
//! once each; memory grows with the number of distinct logins (one 64-bit
//! hash and a row number each, see [`LoginSet`]) and never with the number
//! of decisions otherwise: counts, a fixed-size histogram, and examples
//! capped at [`MAX_EXAMPLES`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::time::Duration;

use serde::Serialize;

/// How many examples of each problem the summary keeps (the counts are exact).
pub const MAX_EXAMPLES: usize = 20;

/// Exit code bit: at least one row failed (bad row, plugin error, plugin failure, not run).
pub const EXIT_ROWS_FAILED: u8 = 1;
/// Exit code bit: a login would be held twice (two rows, a row and an
/// existing user, or a conflict left unresolved).
pub const EXIT_DUPLICATES: u8 = 2;

/// Why a row would be sent with `conflicts: ["login"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conflict {
    /// Its login is in `--existing`.
    Existing,
    /// An earlier row of the file would create the same login.
    EarlierRow,
}

impl Conflict {
    /// The name in the decisions file.
    pub fn name(self) -> &'static str {
        match self {
            Conflict::Existing => "existing",
            Conflict::EarlierRow => "earlier-row",
        }
    }
}

/// How one row ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The plugin answered no commands: Okta imports the row as it is.
    Unchanged,
    /// The plugin set a new login.
    LoginChanged,
    /// The plugin answered commands that do not change the login.
    Commands,
    /// The plugin linked the row to an existing Okta user: no user is created.
    Linked,
    /// The plugin answered an error summary (Okta logs it and imports the row as it is).
    PluginError(String),
    /// The plugin failed (trap, deadline, limit, invalid answer): the failure's kind.
    Failed {
        /// [`crate::plugin::Failure::kind`].
        kind: &'static str,
        /// Details for the operator (may hold a wasm backtrace).
        detail: String,
    },
    /// The pipeline refused the row's request or never found a free slot for it.
    NotRun(String),
    /// The row could not be turned into a request (the message says why); never sent.
    BadRow(String),
}

impl Outcome {
    /// The name in the decisions file and the summary.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::LoginChanged => "login-changed",
            Outcome::Commands => "commands",
            Outcome::Linked => "linked",
            Outcome::PluginError(_) => "plugin-error",
            Outcome::Failed { .. } => "failed",
            Outcome::NotRun(_) => "not-run",
            Outcome::BadRow(_) => "bad-row",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Outcome::PluginError(d) | Outcome::NotRun(d) | Outcome::BadRow(d) => d,
            Outcome::Failed { kind, detail } if detail.is_empty() => kind,
            Outcome::Failed { detail, .. } => detail,
            Outcome::Unchanged | Outcome::LoginChanged | Outcome::Commands | Outcome::Linked => "",
        }
    }

    fn failed(&self) -> bool {
        matches!(
            self,
            Outcome::PluginError(_)
                | Outcome::Failed { .. }
                | Outcome::NotRun(_)
                | Outcome::BadRow(_)
        )
    }
}

/// One row's result.
#[derive(Debug, Clone)]
pub struct Decision {
    /// 1-based data row (the header is not a row).
    pub row: u64,
    /// The line the row starts on in the file (1-based, the header is line 1).
    pub line: u64,
    /// The row's `externalId` cell, or `""`.
    pub external_id: String,
    /// The login the row would create without the hook, or `""` for a bad row.
    pub old_login: String,
    /// Why the request carried a login conflict, if it did.
    pub conflict: Option<Conflict>,
    /// The login the plugin set, if it set one.
    pub new_login: Option<String>,
    /// The plugin's `debugContext.rule`, if any.
    pub rule: Option<String>,
    /// The types of the commands answered, in order.
    pub commands: Vec<String>,
    /// How the row ended.
    pub outcome: Outcome,
    /// Time through the pipeline (decode, permit, plugin, encode); zero for a bad row.
    pub elapsed: Duration,
}

impl Decision {
    /// The login Okta ends up creating for the row: the plugin's, else its own
    /// (Okta imports a row whose hook failed or declined as it is).
    fn final_login(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::BadRow(_) | Outcome::Linked => None,
            _ => Some(self.new_login.as_deref().unwrap_or(&self.old_login)),
        }
    }
}

/// The decisions file's header row.
pub const DECISIONS_HEADER: [&str; 8] = [
    "row",
    "external_id",
    "old_login",
    "conflict",
    "new_login",
    "rule",
    "outcome",
    "detail",
];

/// Writes decisions as RFC 4180 CSV, one line per row.
pub struct DecisionsWriter<W: Write> {
    csv: csv::Writer<W>,
}

impl<W: Write> DecisionsWriter<W> {
    /// Writes the header row.
    pub fn new(out: W) -> Result<DecisionsWriter<W>, csv::Error> {
        let mut csv = csv::Writer::from_writer(out);
        csv.write_record(DECISIONS_HEADER)?;
        Ok(DecisionsWriter { csv })
    }

    /// Writes one decision.
    pub fn write(&mut self, d: &Decision) -> Result<(), csv::Error> {
        self.csv.write_record([
            d.row.to_string().as_str(),
            d.external_id.as_str(),
            d.old_login.as_str(),
            d.conflict.map_or("", Conflict::name),
            d.new_login.as_deref().unwrap_or_default(),
            d.rule.as_deref().unwrap_or_default(),
            d.outcome.name(),
            // One line per row: a backtrace's newlines would only be quoted, but
            // a spreadsheet shows the first line best.
            d.outcome.detail().replace('\n', " | ").as_str(),
        ])
    }

    /// Flushes everything written.
    pub fn finish(mut self) -> Result<(), std::io::Error> {
        self.csv.flush()
    }
}

/// Logins seen so far, case-insensitively, each with the row that had it
/// first (0: an existing login). Keeps a 64-bit hash of the lowercased login,
/// not the text, so 100,000 rows cost a few MB; two different logins are
/// taken for one with probability about n²/2⁶⁵ (10⁻⁹ for a million rows).
#[derive(Debug, Default)]
pub struct LoginSet {
    rows: HashMap<u64, u64>,
}

impl LoginSet {
    fn key(login: &str) -> u64 {
        // `DefaultHasher::new()` has fixed keys: the same login hashes the same in every run.
        let mut h = DefaultHasher::new();
        login.to_lowercase().hash(&mut h);
        h.finish()
    }

    /// Records `login` for `row` unless it is there; returns the row that had it first.
    pub fn insert(&mut self, login: &str, row: u64) -> Option<u64> {
        match self.rows.entry(LoginSet::key(login)) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
                None
            }
        }
    }

    /// The row that has `login` (0: an existing login), if any.
    pub fn get(&self, login: &str) -> Option<u64> {
        self.rows.get(&LoginSet::key(login)).copied()
    }

    /// How many distinct logins.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Percentiles of per-row times without keeping them: log-linear buckets of
/// microseconds, 32 per power of two (at most ~3% off), fixed size.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB: u64 = 32;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 * SUB) as usize],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < SUB {
            return us as usize;
        }
        let exp = 63 - u64::from(us.leading_zeros()); // us >= 2^exp, exp >= 5
        let mantissa = (us >> (exp - 5)) - SUB; // 0..32
        ((exp - 4) * SUB + mantissa) as usize
    }

    /// The smallest value in bucket `index`.
    fn lower(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let exp = index / SUB + 4;
        (SUB + index % SUB) << (exp - 5)
    }

    /// Counts one duration.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(c) = self.counts.get_mut(Histogram::index(us)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// The `q` quantile (0..=1) in microseconds (a bucket's lower bound); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::lower(i).min(self.max);
            }
        }
        self.max
    }
}

/// A login two rows would end up with.
#[derive(Debug, Clone, Serialize)]
pub struct SharedLogin {
    /// The login (as the later row has it).
    pub login: String,
    /// The row that had it first.
    pub first_row: u64,
    /// The later row.
    pub row: u64,
}

/// A login the plugin made that an existing user already holds.
#[derive(Debug, Clone, Serialize)]
pub struct ExistingLogin {
    /// The login.
    pub login: String,
    /// The row the plugin gave it to.
    pub row: u64,
}

/// A row that could not be run.
#[derive(Debug, Clone, Serialize)]
pub struct BadRow {
    /// The row number.
    pub row: u64,
    /// The line it starts on.
    pub line: u64,
    /// What is wrong with it.
    pub error: String,
}

/// A count with the first few examples.
#[derive(Debug, Clone, Serialize)]
pub struct Examples<T> {
    /// How many there are.
    pub count: u64,
    /// The first [`MAX_EXAMPLES`] of them.
    pub examples: Vec<T>,
}

impl<T> Default for Examples<T> {
    fn default() -> Self {
        Examples {
            count: 0,
            examples: Vec::new(),
        }
    }
}

impl<T> Examples<T> {
    fn push(&mut self, item: T) {
        self.count += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(item);
        }
    }
}

/// Per-row time through the pipeline, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Times {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest row.
    pub max_ms: f64,
}

/// What the run found; `--json` prints it as it is.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The CSV file.
    pub file: String,
    /// What answered (`tenant <id>` or the plugin file).
    pub target: String,
    /// The plugin's digest.
    pub plugin: String,
    /// `fresh` or `reuse`.
    pub instance_mode: String,
    /// Data rows read (bad ones included).
    pub rows: u64,
    /// Rows sent with `conflicts: ["login"]`, by reason.
    pub conflicts: BTreeMap<&'static str, u64>,
    /// Rows per outcome (see the README for each name).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Commands answered, by type.
    pub commands: BTreeMap<String, u64>,
    /// `debugContext.rule` of the answers, by value.
    pub rules: BTreeMap<String, u64>,
    /// Error summaries the plugin answered, by text (at most [`MAX_EXAMPLES`] texts).
    pub plugin_errors: BTreeMap<String, u64>,
    /// Plugin failures, by kind (`trap`, `deadline`, `memory_limit`, …).
    pub failures: BTreeMap<&'static str, u64>,
    /// Rows that could not be turned into a request.
    pub bad_rows: Examples<BadRow>,
    /// Logins two rows would end up with (kept or made by the plugin).
    pub logins_to_two_rows: Examples<SharedLogin>,
    /// Logins the plugin made that an existing user holds.
    pub new_logins_existing: Examples<ExistingLogin>,
    /// Rows sent with a conflict that keep a login an existing user or an
    /// earlier row holds (the plugin changed nothing, declined or failed).
    pub unresolved_conflicts: Examples<SharedLogin>,
    /// Per-row time through the pipeline.
    pub time_per_row: Times,
    /// Wall-clock time of the run, in seconds.
    pub elapsed_s: f64,
    /// Rows per second over the run.
    pub rows_per_s: f64,
    /// The process's peak resident memory, in bytes (Linux: `VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// The exit code: 0, or [`EXIT_ROWS_FAILED`] | [`EXIT_DUPLICATES`].
    pub exit_code: u8,
    #[serde(skip)]
    histogram: Histogram,
    #[serde(skip)]
    finals: LoginSet,
}

impl Summary {
    /// An empty summary of a run of `file` against `target`.
    pub fn new(file: String, target: String, plugin: String, instance_mode: String) -> Summary {
        Summary {
            file,
            target,
            plugin,
            instance_mode,
            rows: 0,
            conflicts: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            commands: BTreeMap::new(),
            rules: BTreeMap::new(),
            plugin_errors: BTreeMap::new(),
            failures: BTreeMap::new(),
            bad_rows: Examples::default(),
            logins_to_two_rows: Examples::default(),
            new_logins_existing: Examples::default(),
            unresolved_conflicts: Examples::default(),
            time_per_row: Times {
                p50_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
            },
            elapsed_s: 0.0,
            rows_per_s: 0.0,
            peak_rss_bytes: None,
            exit_code: 0,
            histogram: Histogram::default(),
            finals: LoginSet::default(),
        }
    }

    /// Adds the next decision (in row order); `existing` is the `--existing` set.
    pub fn add(&mut self, d: &Decision, existing: &LoginSet) {
        self.rows += 1;
        *self.outcomes.entry(d.outcome.name()).or_default() += 1;
        if let Some(c) = d.conflict {
            *self.conflicts.entry(c.name()).or_default() += 1;
        }
        for c in &d.commands {
            *self.commands.entry(c.clone()).or_default() += 1;
        }
        if let Some(rule) = &d.rule {
            *self.rules.entry(rule.clone()).or_default() += 1;
        }
        match &d.outcome {
            Outcome::PluginError(summary) => {
                let known = self.plugin_errors.contains_key(summary);
                if known || self.plugin_errors.len() < MAX_EXAMPLES {
                    *self.plugin_errors.entry(summary.clone()).or_default() += 1;
                } else {
                    *self.plugin_errors.entry("(other)".into()).or_default() += 1;
                }
            }
            Outcome::Failed { kind, .. } => *self.failures.entry(*kind).or_default() += 1,
            Outcome::BadRow(error) => self.bad_rows.push(BadRow {
                row: d.row,
                line: d.line,
                error: error.clone(),
            }),
            _ => {}
        }
        if d.outcome.failed() {
            self.exit_code |= EXIT_ROWS_FAILED;
        }
        if !matches!(d.outcome, Outcome::BadRow(_)) {
            self.histogram.record(d.elapsed);
        }
        self.check_logins(d, existing);
    }

    fn check_logins(&mut self, d: &Decision, existing: &LoginSet) {
        let Some(login) = d.final_login() else {
            return;
        };
        if let Some(new) = &d.new_login
            && existing.get(new).is_some()
        {
            self.new_logins_existing.push(ExistingLogin {
                login: new.clone(),
                row: d.row,
            });
            self.exit_code |= EXIT_DUPLICATES;
        }
        if d.new_login.is_none() && d.conflict.is_some() {
            // Okta saw a conflict and the hook did not resolve it.
            let first_row = existing
                .get(login)
                .or_else(|| self.finals.get(login))
                .unwrap_or(0);
            self.unresolved_conflicts.push(SharedLogin {
                login: login.to_owned(),
                first_row,
                row: d.row,
            });
            self.exit_code |= EXIT_DUPLICATES;
        }
        if let Some(first_row) = self.finals.insert(login, d.row) {
            self.logins_to_two_rows.push(SharedLogin {
                login: login.to_owned(),
                first_row,
                row: d.row,
            });
            self.exit_code |= EXIT_DUPLICATES;
        }
    }

    /// Closes the summary once every row is in: times and rates.
    pub fn finish(&mut self, elapsed: Duration) {
        let ms = |us: u64| us as f64 / 1000.0;
        self.time_per_row = Times {
            p50_ms: ms(self.histogram.quantile(0.50)),
            p99_ms: ms(self.histogram.quantile(0.99)),
            max_ms: ms(self.histogram.max),
        };
        self.elapsed_s = elapsed.as_secs_f64();
        self.rows_per_s = if self.elapsed_s > 0.0 {
            self.rows as f64 / self.elapsed_s
        } else {
            0.0
        };
        self.peak_rss_bytes = peak_rss();
    }

    /// Whether any row failed or any login would be held twice.
    pub fn ok(&self) -> bool {
        self.exit_code == 0
    }

    /// The summary for people.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "dry run of {} through {} (plugin {}, {} instances)",
            self.file, self.target, self.plugin, self.instance_mode
        );
        let _ = writeln!(
            t,
            "rows:          {} in {:.1} s ({:.0} rows/s)",
            self.rows, self.elapsed_s, self.rows_per_s
        );
        let conflicts: u64 = self.conflicts.values().sum();
        let _ = writeln!(
            t,
            "conflicts:     {conflicts}{}",
            if conflicts > 0 {
                format!(" ({})", format_counts(&self.conflicts))
            } else {
                String::new()
            }
        );
        let _ = writeln!(t, "outcomes:      {}", format_counts(&self.outcomes));
        let _ = writeln!(t, "commands:      {}", format_counts(&self.commands));
        let _ = writeln!(t, "rules:         {}", format_counts(&self.rules));
        let _ = writeln!(t, "plugin errors: {}", format_counts(&self.plugin_errors));
        let _ = writeln!(t, "failures:      {}", format_counts(&self.failures));
        let _ = writeln!(
            t,
            "time per row:  p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.time_per_row.p50_ms, self.time_per_row.p99_ms, self.time_per_row.max_ms
        );
        if let Some(rss) = self.peak_rss_bytes {
            let _ = writeln!(t, "peak memory:   {:.1} MiB", rss as f64 / 1048576.0);
        }
        let _ = writeln!(t, "bad rows:      {}", self.bad_rows.count);
        for b in &self.bad_rows.examples {
            let _ = writeln!(t, "  row {} (line {}): {}", b.row, b.line, b.error);
        }
        let _ = writeln!(
            t,
            "logins handed to two rows:             {}",
            self.logins_to_two_rows.count
        );
        for s in &self.logins_to_two_rows.examples {
            let _ = writeln!(t, "  {}: rows {} and {}", s.login, s.first_row, s.row);
        }
        let _ = writeln!(
            t,
            "new logins equal to an existing one:   {}",
            self.new_logins_existing.count
        );
        for e in &self.new_logins_existing.examples {
            let _ = writeln!(t, "  {}: row {}", e.login, e.row);
        }
        let _ = writeln!(
            t,
            "conflicts the plugin left unresolved:  {}",
            self.unresolved_conflicts.count
        );
        for s in &self.unresolved_conflicts.examples {
            let held = if s.first_row == 0 {
                "an existing user".to_owned()
            } else {
                format!("row {}", s.first_row)
            };
            let _ = writeln!(t, "  {}: row {} (held by {held})", s.login, s.row);
        }
        let verdict = match self.exit_code {
            0 => "OK: every row answered, no login held twice".to_owned(),
            code => {
                let mut why = Vec::new();
                if code & EXIT_ROWS_FAILED != 0 {
                    why.push("rows failed");
                }
                if code & EXIT_DUPLICATES != 0 {
                    why.push("logins held twice");
                }
                format!("PROBLEMS: {} (exit code {code})", why.join(", "))
            }
        };
        let _ = writeln!(t, "result:        {verdict}");
        t
    }
}

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), where there is one.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

fn format_counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".to_owned();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.04, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.04, "{p99}");
        assert_eq!(h.quantile(1.0), h.quantile(1.0).min(10_000));
        for us in [0, 1, 31, 32, 33, 63, 64, 1000, 1 << 40] {
            let i = Histogram::index(us);
            assert!(Histogram::lower(i) <= us, "{us}");
            assert!(Histogram::lower(i + 1) > us, "{us}");
        }
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    fn decision(row: u64, old: &str, conflict: Option<Conflict>, new: Option<&str>) -> Decision {
        Decision {
            row,
            line: row + 1,
            external_id: String::new(),
            old_login: old.into(),
            conflict,
            new_login: new.map(str::to_owned),
            rule: None,
            commands: Vec::new(),
            outcome: if new.is_some() {
                Outcome::LoginChanged
            } else {
                Outcome::Unchanged
            },
            elapsed: Duration::from_micros(100),
        }
    }

    #[test]
    fn duplicates_are_found_case_insensitively_by_kind() {
        let mut existing = LoginSet::default();
        existing.insert("Taken@x.test", 0);
        let mut s = Summary::new("f".into(), "t".into(), "p".into(), "fresh".into());
        s.add(&decision(1, "a@x.test", None, None), &existing);
        assert!(s.ok());
        // The plugin made an existing login.
        s.add(
            &decision(
                2,
                "taken@x.test",
                Some(Conflict::Existing),
                Some("TAKEN@x.test"),
            ),
            &existing,
        );
        assert_eq!(s.new_logins_existing.count, 1);
        // A later row's kept login equals an earlier row's.
        s.add(&decision(3, "b@x.test", None, Some("A@X.test")), &existing);
        assert_eq!(s.logins_to_two_rows.count, 1);
        assert_eq!(s.logins_to_two_rows.examples[0].first_row, 1);
        // A conflict left as it was.
        s.add(
            &decision(4, "taken@x.test", Some(Conflict::Existing), None),
            &existing,
        );
        assert_eq!(s.unresolved_conflicts.count, 1);
        assert_eq!(s.exit_code, EXIT_DUPLICATES);
        let mut bad = decision(5, "", None, None);
        bad.outcome = Outcome::BadRow("no login".into());
        s.add(&bad, &existing);
        assert_eq!(s.exit_code, EXIT_DUPLICATES | EXIT_ROWS_FAILED);
        assert_eq!(s.rows, 5);
        assert_eq!(s.outcomes["bad-row"], 1);
    }
}
