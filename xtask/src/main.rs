//! Project automation.
//!
//! - `cargo xtask ci`: what CI runs: format check, clippy and tests (with
//!   doctests) with all features, docs, each library crate built without
//!   its default features and checked for what its default build pulls,
//!   the examples, the packaged crates built and used by a crate outside
//!   the workspace, the loom models, and the benchmark harness in smoke
//!   mode.
//! - `cargo xtask soak`: the long reconciler fault soak (100k objects,
//!   2M writes, faults injected) and the bounded-memory runs (100k keys,
//!   10M writes); CI runs short variants in the tests.
//! - `cargo xtask fuzz TARGET [SECONDS]`: one cargo-fuzz target (needs
//!   `cargo install cargo-fuzz`); the corpus is replayed by the tests.
//! - `cargo xtask loom`: the loom models of `part` and `statedb`
//!   (`crates/testkit/tests/loom.rs`), built with `--cfg loom` in
//!   `target/loom` so the normal build cache stays valid. CI runs them.
//! - `cargo xtask stress`: the statedb stress probes at full size, then the
//!   reconciler stress (`reconciler/tests/stress.rs`) for 60 s
//!   (`statedb/tests/stress.rs`: 60 s of 8 writers with the cross-table
//!   invariant and change replay, a 2M-key watch storm, a 5M-object
//!   transaction, a long-lived snapshot under 10M writes, 100k waiters on
//!   one watch, 10,000 tables); `cargo test` runs them small.
//! - `cargo xtask package`: the publishing checks of `ci` alone (features,
//!   examples, packaged crates used from outside the workspace).
//! - `cargo xtask bench [flags]`: the benchmark harness in release mode;
//!   flags are passed through (`--quick`, `--smoke`, `--filter S`...,
//!   `--json FILE`, `--scale`, and `--ab BEFORE [--rounds N]` to compare
//!   this build with an earlier copy of the binary).

mod publish;

use std::process::{Command, ExitCode};

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

pub(crate) fn run(what: &str, mut cmd: Command) -> Result<(), String> {
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

/// `cargo test --release --locked -p <package> --test <test> -- --nocapture
/// --test-threads=1`, with `env` set: the long runs and the loom models.
fn release_test(package: &str, test: &str, env: &[(&str, &str)]) -> Command {
    let mut c = cargo();
    c.args([
        "test",
        "--release",
        "--locked",
        "-p",
        package,
        "--test",
        test,
    ])
    .args(["--", "--nocapture", "--test-threads=1"])
    .envs(env.iter().copied());
    c
}

/// Built with `--cfg loom`, in a target directory of its own so the normal
/// build cache stays valid.
const LOOM_ENV: [(&str, &str); 2] = [
    ("RUSTFLAGS", "--cfg loom"),
    ("CARGO_TARGET_DIR", "target/loom"),
];

fn soak() -> Result<(), String> {
    let c = release_test(
        "rstatedb-reconciler",
        "soak",
        &[("SOAK_OBJECTS", "100000"), ("SOAK_OPS", "2000000")],
    );
    run("reconciler fault soak (100k objects, 2M writes)", c)?;
    let c = release_test(
        "rstatedb-reconciler",
        "bounded_memory",
        &[("BOUNDED_KEYS", "100000"), ("BOUNDED_WRITES", "10000000")],
    );
    run("bounded memory (100k keys, 10M writes)", c)
}

/// `cargo xtask fuzz <target> [seconds]`: runs one cargo-fuzz target on the
/// stable toolchain (`RUSTC_BOOTSTRAP=1` lets its nightly flags through),
/// growing `crates/fuzz/corpus/<target>`.
fn fuzz(args: &[String]) -> Result<(), String> {
    let target = args
        .first()
        .ok_or("usage: cargo xtask fuzz <tree_program|db_program|key_encoding> [seconds]")?;
    let seconds: u64 = match args.get(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("not a number of seconds: {s}"))?,
        None => 600,
    };
    let mut c = cargo();
    c.args(["fuzz", "run", "--sanitizer", "none", "--debug-assertions"])
        .args(["--fuzz-dir", "crates/fuzz", target.as_str(), "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .env("RUSTC_BOOTSTRAP", "1");
    run(&format!("fuzz {target} for {seconds} s"), c)
}

fn stress() -> Result<(), String> {
    let c = release_test(
        "rstatedb",
        "stress",
        &[
            ("STRESS_SECONDS", "60"),
            ("STRESS_WRITERS", "8"),
            ("STRESS_READERS", "4"),
            ("STRESS_REPLAY_WRITES", "2000000"),
            ("STRESS_WATCH_KEYS", "2000000"),
            ("STRESS_WAITERS", "100000"),
            ("STRESS_HUGE_OBJECTS", "5000000"),
            ("STRESS_SNAPSHOT_WRITES", "10000000"),
            ("STRESS_TABLES", "10000"),
        ],
    );
    run("statedb stress probes (full size)", c)?;
    let c = release_test("rstatedb-reconciler", "stress", &[("STRESS_SECONDS", "60")]);
    run("reconciler stress (60 s)", c)
}

fn loom() -> Result<(), String> {
    let mut c = cargo();
    c.args(["clippy", "--release", "--locked", "--all-targets"])
        .args(["-p", "rstatedb-part", "-p", "rstatedb", "-p", "testkit"])
        .args(["--", "-D", "warnings"])
        .envs(LOOM_ENV);
    run("cargo clippy (cfg loom)", c)?;
    run("loom models", release_test("testkit", "loom", &LOOM_ENV))
}

/// The Debian packages the build and the tests need: `protoc` for the
/// etcd client's build, and `etcd` for the etcd tests. Installed with
/// apt-get when missing (as root, or through sudo).
fn system_packages() -> Result<(), String> {
    let has = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // etcd for the etcd tests, protoc for etcd-client's build, chromium
    // and its WebDriver for the web view's browser test.
    if has("etcd") && has("protoc") && has("chromium") && has("chromedriver") {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    // A failed update (an offline mirror list) still lets install try.
    let _ = run("apt-get update", apt(&["update", "-qq"]));
    run(
        "apt-get install etcd-server protobuf-compiler chromium chromium-driver",
        apt(&[
            "install",
            "-y",
            "-qq",
            "etcd-server",
            "protobuf-compiler",
            "chromium",
            "chromium-driver",
        ]),
    )
    .map_err(|e| format!("{e}: the build needs protoc and the tests etcd (Debian: etcd-server, protobuf-compiler)"))
}

fn ci() -> Result<(), String> {
    system_packages()?;
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
    run("cargo clippy (default features)", c)?;
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy (all features)", c)?;
    let mut c = cargo();
    c.args(["test", "--workspace", "--all-features", "--locked"]);
    run("cargo test (all features)", c)?;
    let mut c = cargo();
    c.args([
        "doc",
        "--workspace",
        "--no-deps",
        "--all-features",
        "--locked",
    ])
    .env("RUSTDOCFLAGS", "-D warnings");
    run("cargo doc", c)?;
    publish::features()?;
    publish::examples()?;
    publish::package()?;
    loom()?;
    bench(&["--smoke".to_string()])?;
    bench(&["--smoke".to_string(), "--scale".to_string()])
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("soak") => soak(),
        Some("loom") => loom(),
        Some("stress") => stress(),
        Some("package") => publish::features()
            .and_then(|()| publish::examples())
            .and_then(|()| publish::package()),
        Some("fuzz") => fuzz(&args[1..]),
        _ => Err("usage: cargo xtask ci | cargo xtask soak | cargo xtask stress | cargo xtask loom | cargo xtask package | cargo xtask fuzz TARGET [SECONDS] | cargo xtask bench [--quick|--smoke] [--scale] [--filter S]... [--json FILE] [--ab BEFORE [--rounds N]]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
