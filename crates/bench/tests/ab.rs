//! `bench --ab`: the real binary compared with itself, alternating.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_bench");

#[test]
fn ab_runs_both_builds_and_reports_each_row_with_the_baseline() {
    let json = std::env::temp_dir().join(format!("bench-ab-test-{}.json", std::process::id()));
    let out = Command::new(BENCH)
        .args([
            "--ab", BENCH, "--rounds", "2", "--smoke", "--filter", "part_get", "--json",
        ])
        .arg(&json)
        .output()
        .expect("bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("baseline_btreemap_insert")),
        "{table}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    std::fs::remove_file(&json).ok();
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
