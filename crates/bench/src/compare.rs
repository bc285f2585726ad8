//! `--ab BEFORE`: this harness against another build of it, run
//! alternately on one machine.
//!
//! The machine's speed drifts by up to 3× between runs, so one run of each
//! build says little. Here each selected row runs in its own child process
//! of either build, the two builds taking turns (the order swapped every
//! round), and `baseline_btreemap_insert` runs the same way: a change is
//! only real when its row moves more than the baseline does. Children are
//! given one `--filter` each, which builds older than this mode also read.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::harness::Row;

/// The row every comparison also runs: it measures the machine, not us.
pub const BASELINE: &str = "baseline_btreemap_insert";

/// What to compare: the other build, the children's mode flag, the row
/// filters and how many rounds.
pub struct Plan<'a> {
    pub before: &'a Path,
    pub after: &'a Path,
    /// `--quick` or `--smoke` for the children; none for full runs.
    pub mode_flag: Option<&'a str>,
    pub filters: &'a [String],
    pub rounds: usize,
}

/// Objects per second of each row, over the rounds, for each build.
#[derive(Default)]
pub struct Samples {
    rows: BTreeMap<String, (Vec<f64>, Vec<f64>)>,
}

impl Samples {
    fn add(&mut self, after: bool, rows: &[Row]) {
        for r in rows {
            let (b, a) = self.rows.entry(r.name.clone()).or_default();
            if after { a } else { b }.push(r.objects_per_sec);
        }
    }
}

/// One row of the result: best and median objects per second of each
/// build, and their ratios (after / before).
#[derive(Debug, serde::Serialize, PartialEq)]
pub struct Compared {
    pub name: String,
    pub before_best: f64,
    pub after_best: f64,
    pub best_ratio: f64,
    pub median_ratio: f64,
    /// `median_ratio` over the baseline's: how much the row moved beyond
    /// the machine's own drift between the two builds' runs.
    pub vs_baseline: Option<f64>,
    pub rounds: usize,
}

/// Runs the plan: `rounds` × (filters + baseline) × 2 child processes;
/// with no filter, each child runs every row (the baseline among them).
///
/// # Errors
///
/// A child that cannot start, fails, or writes no readable rows.
pub fn run(plan: &Plan) -> Result<Samples, String> {
    let filters: Vec<Option<&str>> = if plan.filters.is_empty() {
        vec![None]
    } else {
        std::iter::once(BASELINE)
            .chain(
                plan.filters
                    .iter()
                    .map(String::as_str)
                    .filter(|f| *f != BASELINE),
            )
            .map(Some)
            .collect()
    };
    let mut samples = Samples::default();
    for round in 0..plan.rounds {
        for filter in &filters {
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for after in order {
                let exe = if after { plan.after } else { plan.before };
                let rows = run_child(exe, plan.mode_flag, *filter)?;
                samples.add(after, &rows);
            }
        }
    }
    Ok(samples)
}

fn run_child(
    exe: &Path,
    mode_flag: Option<&str>,
    filter: Option<&str>,
) -> Result<Vec<Row>, String> {
    let what = filter.map_or(String::new(), |f| format!(" --filter {f}"));
    let json = std::env::temp_dir().join(format!(
        "bench-ab-{}-{}.json",
        std::process::id(),
        filter
            .unwrap_or("all")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    let mut command = Command::new(exe);
    command.args(mode_flag);
    if let Some(f) = filter {
        command.args(["--filter", f]);
    }
    let out = command
        .arg("--json")
        .arg(&json)
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{}{what} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()));
    let _ = std::fs::remove_file(&json);
    serde_json::from_str(&text?).map_err(|e| format!("{}{what}: {e}", exe.display()))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The rows both builds ran, by name, the baseline first.
pub fn summarize(samples: &Samples) -> Vec<Compared> {
    let mut out: Vec<Compared> = samples
        .rows
        .iter()
        .filter(|(_, (b, a))| !b.is_empty() && !a.is_empty())
        .map(|(name, (b, a))| {
            let best = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
            Compared {
                name: name.clone(),
                before_best: best(b),
                after_best: best(a),
                best_ratio: best(a) / best(b),
                median_ratio: median(a) / median(b),
                vs_baseline: None,
                rounds: a.len().min(b.len()),
            }
        })
        .collect();
    out.sort_by_key(|c| c.name != BASELINE);
    let base = out
        .first()
        .filter(|c| c.name == BASELINE)
        .map(|c| c.median_ratio);
    for c in &mut out {
        c.vs_baseline = base.map(|b| c.median_ratio / b);
    }
    out
}

/// The table printed for a comparison.
pub fn render(rows: &[Compared]) -> String {
    let mut s = format!(
        "{:<36} {:>14} {:>14} {:>9} {:>9} {:>9}\n",
        "name", "before best", "after best", "best a/b", "med a/b", "vs base"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<36} {:>14.0} {:>14.0} {:>9.2} {:>9.2} {:>9}\n",
            r.name,
            r.before_best,
            r.after_best,
            r.best_ratio,
            r.median_ratio,
            r.vs_baseline.map_or("-".to_string(), |v| format!("{v:.2}"))
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, ops: f64) -> Row {
        Row {
            name: name.into(),
            objects_per_sec: ops,
            ..Row::default()
        }
    }

    #[test]
    fn ratios_are_after_over_before_with_the_baseline_first() {
        let mut s = Samples::default();
        s.add(false, &[row("a_row", 100.0), row(BASELINE, 10.0)]);
        s.add(false, &[row("a_row", 300.0), row(BASELINE, 30.0)]);
        s.add(false, &[row("a_row", 200.0), row(BASELINE, 20.0)]);
        s.add(true, &[row("a_row", 150.0), row(BASELINE, 10.0)]);
        s.add(true, &[row("a_row", 400.0), row(BASELINE, 20.0)]);
        s.add(true, &[row("a_row", 250.0), row(BASELINE, 30.0)]);
        s.add(true, &[row("only_after", 1.0)]);
        let got = summarize(&s);
        assert_eq!(got.len(), 2, "a row one build lacks is left out");
        assert_eq!(got[0].name, BASELINE);
        assert_eq!(got[0].best_ratio, 1.0);
        assert_eq!(got[0].median_ratio, 1.0);
        assert_eq!(got[0].vs_baseline, Some(1.0));
        let a = &got[1];
        assert_eq!((a.before_best, a.after_best), (300.0, 400.0));
        assert!((a.best_ratio - 400.0 / 300.0).abs() < 1e-12);
        assert!((a.median_ratio - 250.0 / 200.0).abs() < 1e-12);
        assert_eq!(a.rounds, 3);
        assert!((a.vs_baseline.unwrap() - 1.25).abs() < 1e-12);
        let table = render(&got);
        assert!(table.lines().nth(2).is_some_and(|l| l.starts_with("a_row")));
        assert!(table.contains("1.33") && table.contains("1.25"));
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0]), 5.0);
    }
}
