//! `detect` command: replays one CSV series causally and prints one JSON line per flagged day.
//!
//! ```text
//! detect --csv FILE [--min-impact X] [--min-pct P] [--sensitivity low|medium|high]
//! ```
//! Arguments may come in any order (the program name is not included). The CSV has the header
//! `timestamp,value`, one row per calendar day; an empty (or `nan`) value is a day with no data
//! ([`MissingDay::NoData`]), as is a calendar day without a row.
//!
//! `--min-impact` is the currency gate on |actual − expected|; its default is `0` here (off) because
//! a CSV can be in any unit, whereas the product's alert policy ([`crate::alert::AlertPolicy`]) has a
//! non-zero default. `--min-pct` gates on |impact| in percent of the expected value (default 0, off).

use std::io::Write;

use serde::Serialize;
use time::Date;

use crate::detect::{self, DetectorConfig, Flag, Sensitivity};
use crate::series::{DailySeries, MissingDay};

/// Errors of the CLI entry point.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line could not be understood.
    #[error(
        "usage: detect --csv FILE [--min-impact X] [--min-pct P] [--sensitivity low|medium|high]: {0}"
    )]
    Usage(String),
    /// The CSV could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A CSV line is malformed.
    #[error("{path}:{line}: {message}")]
    Csv {
        /// File path.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
}

#[derive(Debug)]
struct Options {
    csv: String,
    min_impact: f64,
    min_pct: f64,
    sensitivity: Sensitivity,
}

fn parse_args(args: &[String]) -> Result<Options, CliError> {
    let mut csv = None;
    let mut min_impact = 0.0;
    let mut min_pct = 0.0;
    let mut sensitivity = Sensitivity::default();
    let mut saw_command = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| CliError::Usage(format!("{name} needs a value")))
        };
        let number = |name: &str, v: String| -> Result<f64, CliError> {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    CliError::Usage(format!("{name} must be a non-negative number, got {v:?}"))
                })
        };
        match arg.as_str() {
            "detect" if !saw_command => saw_command = true,
            "--csv" => csv = Some(value("--csv")?),
            "--min-impact" => min_impact = number("--min-impact", value("--min-impact")?)?,
            "--min-pct" => min_pct = number("--min-pct", value("--min-pct")?)?,
            "--sensitivity" => {
                sensitivity = match value("--sensitivity")?.as_str() {
                    "low" => Sensitivity::Low,
                    "medium" => Sensitivity::Medium,
                    "high" => Sensitivity::High,
                    other => {
                        return Err(CliError::Usage(format!("unknown sensitivity {other:?}")));
                    }
                }
            }
            other => return Err(CliError::Usage(format!("unexpected argument {other:?}"))),
        }
    }
    if !saw_command {
        return Err(CliError::Usage("missing the `detect` command".into()));
    }
    let csv = csv.ok_or_else(|| CliError::Usage("--csv FILE is required".into()))?;
    Ok(Options {
        csv,
        min_impact,
        min_pct,
        sensitivity,
    })
}

/// Parses a `timestamp,value` CSV into a series with [`MissingDay::NoData`] semantics.
pub fn parse_csv(path: &str, text: &str) -> Result<DailySeries, CliError> {
    let err = |line: usize, message: String| CliError::Csv {
        path: path.to_string(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(err(
            1,
            "empty file (expected header `timestamp,value`)".into(),
        ));
    };
    let header: Vec<&str> = header
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::trim)
        .collect();
    let (Some(ts_col), Some(val_col)) = (
        header.iter().position(|h| *h == "timestamp"),
        header.iter().position(|h| *h == "value"),
    ) else {
        return Err(err(
            1,
            "header must name `timestamp` and `value` columns".into(),
        ));
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let mut points: Vec<(Date, Option<f64>)> = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let ts = cells
            .get(ts_col)
            .ok_or_else(|| err(i + 1, "missing timestamp".into()))?;
        let day = ts.get(..10).unwrap_or(ts);
        let date =
            Date::parse(day, &format).map_err(|e| err(i + 1, format!("bad date {ts:?}: {e}")))?;
        let raw = cells.get(val_col).copied().unwrap_or("");
        let value = if raw.is_empty() || raw.eq_ignore_ascii_case("nan") {
            None
        } else {
            let v: f64 = raw
                .parse()
                .map_err(|_| err(i + 1, format!("bad value {raw:?}")))?;
            v.is_finite().then_some(v)
        };
        points.push((date, value));
    }
    // A day listed twice: the last row wins (an export repeats a day only when it was corrected).
    let mut days: std::collections::BTreeMap<Date, Option<f64>> = std::collections::BTreeMap::new();
    for (d, v) in points {
        days.insert(d, v);
    }
    let (Some((&start, _)), Some((&last, _))) = (days.first_key_value(), days.last_key_value())
    else {
        return Ok(DailySeries::empty(Date::MIN));
    };
    let mut series = DailySeries::empty(start);
    for (d, v) in days {
        // Calendar days without a row are days with no data.
        if let Some(prev) = d.previous_day() {
            series.extend_to(prev, MissingDay::NoData);
        }
        series.push(v);
    }
    series.extend_to(last, MissingDay::NoData);
    Ok(series)
}

#[derive(Serialize)]
struct Line<'a> {
    date: String,
    direction: &'a str,
    actual: f64,
    expected: f64,
    lower: f64,
    upper: f64,
    impact: f64,
    impact_pct: Option<f64>,
    score: f64,
    kind: &'a str,
    weekly: bool,
}

fn passes(flag: &Flag, opts: &Options) -> bool {
    let abs_ok = flag.impact.abs() >= opts.min_impact;
    let pct_ok = opts.min_pct <= 0.0 || flag.impact_pct.is_none_or(|p| p.abs() >= opts.min_pct);
    abs_ok && pct_ok
}

/// Runs `detect` with `args` (without the program name), writing JSON lines to `out`.
pub fn detect_cli(args: &[String], out: &mut dyn Write) -> Result<(), CliError> {
    let opts = parse_args(args)?;
    let text = std::fs::read_to_string(&opts.csv).map_err(|source| CliError::Read {
        path: opts.csv.clone(),
        source,
    })?;
    let series = parse_csv(&opts.csv, &text)?;
    let config = DetectorConfig {
        sensitivity: opts.sensitivity,
    };
    for flag in detect::replay(&series, &config) {
        if !passes(&flag, &opts) {
            continue;
        }
        let line = Line {
            date: crate::format_date(flag.date),
            direction: flag.direction.as_str(),
            actual: flag.actual,
            expected: flag.expected,
            lower: flag.lower,
            upper: flag.upper,
            impact: flag.impact,
            impact_pct: flag.impact_pct,
            score: flag.score,
            kind: flag.kind.as_str(),
            weekly: flag.weekly,
        };
        let json = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        writeln!(out, "{json}")?;
    }
    Ok(())
}
