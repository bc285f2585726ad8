//! Running the real harness binary from its integration tests.

use std::process::Command;

/// The harness binary cargo built for these tests.
pub const BENCH: &str = env!("CARGO_BIN_EXE_bench");

/// Runs the harness with `args` and `--json` to a temporary file, which
/// it must exit successfully from; its standard output and the rows it
/// wrote.
pub fn run_with_json(args: &[&str]) -> (String, Vec<serde_json::Value>) {
    let json = std::env::temp_dir().join(format!(
        "bench-test-{}-{}.json",
        std::process::id(),
        args.join("_").replace(['/', ' '], "-")
    ));
    let out = Command::new(BENCH)
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    std::fs::remove_file(&json).ok();
    (String::from_utf8_lossy(&out.stdout).into_owned(), rows)
}
