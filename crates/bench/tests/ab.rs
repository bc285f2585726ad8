//! `bench --ab`: the real binary compared with itself, alternating.

use std::process::Command;

mod common;
use common::{BENCH, run_with_json};

#[test]
fn ab_runs_both_builds_and_reports_each_row_with_the_baseline() {
    let (table, rows) = run_with_json(&[
        "--ab", BENCH, "--rounds", "2", "--smoke", "--filter", "part_get",
    ]);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("baseline_btreemap_insert")),
        "{table}"
    );
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        ["baseline_btreemap_insert", "part_get", "part_get_insert"]
    );
    for r in &rows {
        assert_eq!(r["rounds"], 2, "{r}");
        for k in [
            "before_best",
            "after_best",
            "best_ratio",
            "median_ratio",
            "vs_baseline",
        ] {
            assert!(r[k].as_f64().is_some_and(|v| v > 0.0), "{k} in {r}");
        }
    }
}

#[test]
fn ab_reports_a_missing_build_and_a_bad_rounds_count() {
    let out = Command::new(BENCH)
        .args([
            "--ab",
            "/nonexistent/bench",
            "--smoke",
            "--filter",
            "part_get",
        ])
        .output()
        .expect("bench runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/bench"));
    for args in [
        &["--ab", BENCH, "--rounds", "0"][..],
        &["--rounds", "3"][..],
    ] {
        let out = Command::new(BENCH).args(args).output().expect("bench runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
