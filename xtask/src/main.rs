//! Project automation.
//!
//! - `cargo xtask ci`: what CI runs: format check, clippy, tests (with
//!   doctests), docs, the loom models, and the benchmark harness in smoke
//!   mode.
//! - `cargo xtask soak`: the long reconciler fault soak (100k objects,
//!   2M writes, faults injected); CI runs a short variant in the tests.
//! - `cargo xtask loom`: the loom models of `part` and `statedb`
//!   (`crates/testkit/tests/loom.rs`), built with `--cfg loom` in
//!   `target/loom` so the normal build cache stays valid. CI runs them.
//! - `cargo xtask bench [flags]`: the benchmark harness in release mode;
//!   flags are passed through (`--quick`, `--smoke`, `--filter S`,
//!   `--json FILE`).

use std::process::{Command, ExitCode};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

fn run(what: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("==> {what}");
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn bench(flags: &[String]) -> Result<(), String> {
    let mut c = cargo();
    c.args(["run", "--release", "--locked", "-p", "bench", "--"])
        .args(flags);
    run("benchmark harness", c)
}

fn soak() -> Result<(), String> {
    let mut c = cargo();
    c.args([
        "test",
        "--release",
        "--locked",
        "-p",
        "reconciler",
        "--test",
        "soak",
        "--",
        "--nocapture",
    ])
    .env("SOAK_OBJECTS", "100000")
    .env("SOAK_OPS", "2000000");
    run("reconciler fault soak (100k objects, 2M writes)", c)
}

fn loom() -> Result<(), String> {
    let mut c = cargo();
    c.args([
        "clippy",
        "--release",
        "--locked",
        "-p",
        "part",
        "-p",
        "statedb",
        "-p",
        "testkit",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
    .env("RUSTFLAGS", "--cfg loom")
    .env("CARGO_TARGET_DIR", "target/loom");
    run("cargo clippy (cfg loom)", c)?;
    let mut c = cargo();
    c.args([
        "test",
        "--release",
        "--locked",
        "-p",
        "testkit",
        "--test",
        "loom",
        "--",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("RUSTFLAGS", "--cfg loom")
    .env("CARGO_TARGET_DIR", "target/loom");
    run("loom models", c)
}

fn ci() -> Result<(), String> {
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", c)?;
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy", c)?;
    let mut c = cargo();
    c.args(["test", "--workspace", "--locked"]);
    run("cargo test", c)?;
    let mut c = cargo();
    c.args(["doc", "--workspace", "--no-deps", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc", c)?;
    loom()?;
    bench(&["--smoke".to_string()])
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("soak") => soak(),
        Some("loom") => loom(),
        _ => Err("usage: cargo xtask ci | cargo xtask soak | cargo xtask loom | cargo xtask bench [--quick|--smoke] [--filter S] [--json FILE]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
