//! Benchmark harness for part, statedb and reconciler; see
//! `docs/benchmarks.md`. Run through `cargo xtask bench [--quick|--smoke]
//! [--filter S]... [--json FILE]`, or `--ab BEFORE [--rounds N]` to compare
//! this build with another one (see `compare.rs`).

mod alloc;
mod compare;
mod db_benches;
mod harness;
mod lpm_benches;
mod part_benches;
mod reconciler_bench;
mod scale;

use std::process::{Command, ExitCode};

use harness::{Mode, Row};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const RECONCILER_ROWS: [(&str, u64); 7] = [
    ("reconciler_100k", 100_000),
    ("reconciler_100k_status_index", 100_000),
    ("reconciler_1m", 1_000_000),
    ("reconciler_100k_io_c1", 100_000),
    ("reconciler_100k_io_c16", 100_000),
    ("reconciler_100k_io_c64", 100_000),
    ("reconciler_100k_io_c64_slow1pct", 100_000),
];

struct Args {
    mode: Mode,
    scale: bool,
    /// Rows whose name contains any of these (all rows when empty).
    filters: Vec<String>,
    json: Option<String>,
    /// `--ab`: the build to compare this one with.
    ab: Option<std::path::PathBuf>,
    /// `--rounds` of an `--ab` comparison.
    rounds: Option<usize>,
    child: Option<(String, u64)>,
}

const USAGE: &str = "usage: bench [--quick | --smoke] [--scale] [--filter SUBSTRING]... [--json FILE]\n       bench --ab BEFORE_BINARY [--rounds N] [--quick | --smoke] [--filter SUBSTRING]... [--json FILE]";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        mode: Mode::Full,
        scale: false,
        filters: Vec::new(),
        json: None,
        ab: None,
        rounds: None,
        child: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.mode = Mode::Quick,
            "--smoke" => args.mode = Mode::Smoke,
            "--scale" => args.scale = true,
            "--filter" => args
                .filters
                .push(it.next().ok_or("--filter needs a value")?),
            "--ab" => args.ab = Some(it.next().ok_or("--ab needs the other build's path")?.into()),
            "--rounds" => {
                let rounds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--rounds needs a count of at least 1")?;
                args.rounds = Some(rounds);
            }
            "--json" => args.json = Some(it.next().ok_or("--json needs a file")?),
            "--child" => {
                let name = it.next().ok_or("--child needs a name")?;
                let n = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--child needs an object count")?;
                args.child = Some((name, n));
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.rounds.is_some() && args.ab.is_none() {
        return Err(format!("--rounds is for --ab\n{USAGE}"));
    }
    if args.ab.is_some() && args.scale {
        return Err(format!(
            "--ab compares the harness rows, not --scale\n{USAGE}"
        ));
    }
    Ok(args)
}

fn print_row(r: &Row) {
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
    let mb = |x: Option<u64>| x.map_or("-".to_string(), |v| format!("{:.1}MB", v as f64 / 1e6));
    println!(
        "{:<36} {:>14.0} {:>10.1} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}",
        r.name,
        r.objects_per_sec,
        r.ns_per_object,
        opt(r.allocs_per_object),
        opt(r.bytes_per_object),
        opt(r.p50_us),
        opt(r.p90_us),
        opt(r.p99_us),
        mb(r.peak_rss_bytes),
        r.live_bytes_after
            .map_or("-".to_string(), |v| format!("{:.1}MB", v as f64 / 1e6)),
    );
}

/// mimalloc settings for the child processes, unless the caller set its
/// own: give freed pages back to the OS after 10 ms and commit arena
/// memory as it is used. Lazy commit took the peak RSS of
/// reconciler_100k from 73.5 to 48 MB at the same throughput; a purge
/// delay of 0 instead of 10 ms saves only 1 MB more and costs 20–40% of
/// the throughput in page faults (docs/benchmarks.md, "mimalloc
/// settings" and the sixth session). An allocator setting of this binary,
/// as a service would choose one; the library asks nothing of its users'
/// allocator.
#[cfg(feature = "mimalloc")]
const CHILD_ALLOCATOR_ENV: &[(&str, &str)] = &[
    ("MIMALLOC_PURGE_DELAY", "10"),
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
];
#[cfg(not(feature = "mimalloc"))]
const CHILD_ALLOCATOR_ENV: &[(&str, &str)] = &[];

fn run_child_process(name: &str, n: u64) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    for (key, value) in CHILD_ALLOCATOR_ENV {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    let out = command
        .args(["--child", name, &n.to_string()])
        .output()
        .map_err(|e| format!("{name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().ok_or(format!("{name}: no output"))?;
    serde_json::from_str(line).map_err(|e| format!("{name}: {e}: {line}"))
}

/// `--scale`: the scale rows only (see `scale.rs`).
fn scale_mode(args: &Args) -> ExitCode {
    // The largest size, and how many objects the lookups and the scans
    // visit at every size.
    let (max, visits) = match args.mode {
        Mode::Full => (10_000_000, 1_000_000),
        Mode::Quick => (1_000_000, 1_000_000),
        Mode::Smoke => (10_000, 10_000),
    };
    println!(
        "{:<28} {:>12} {:>14} {:>10}",
        "name", "ns/object", "bytes/object", "peakRSS"
    );
    let mut rows = Vec::new();
    for n in scale::sizes(max) {
        let mut these = scale::db_rows(n, visits);
        match run_child_process("reconciler_scale", n) {
            Ok(child) => these.push(scale::reconciler_row(n, &child)),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
        for r in these {
            println!(
                "{:<28} {:>12.1} {:>14} {:>10}",
                r.name,
                r.ns_per_object,
                r.bytes_per_object
                    .map_or("-".to_string(), |b| format!("{b:.0}")),
                r.peak_rss_bytes
                    .map_or("-".to_string(), |b| format!("{:.0}MB", b as f64 / 1e6)),
            );
            rows.push(r);
        }
    }
    write_json(args.json.as_deref(), &rows)
}

/// Writes `rows` to `path` as JSON when one was given (`--json`).
fn write_json(path: Option<&str>, rows: &impl serde::Serialize) -> ExitCode {
    let Some(path) = path else {
        return ExitCode::SUCCESS;
    };
    let json = serde_json::to_string_pretty(rows).expect("rows serialize");
    match std::fs::write(path, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--ab BEFORE`: this build against `BEFORE`, alternating (see
/// `compare.rs`).
fn ab_mode(args: &Args, before: &std::path::Path, rounds: usize) -> ExitCode {
    let after = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mode_flag = match args.mode {
        Mode::Full => None,
        Mode::Quick => Some("--quick"),
        Mode::Smoke => Some("--smoke"),
    };
    let plan = compare::Plan {
        before,
        after: &after,
        mode_flag,
        filters: &args.filters,
        rounds,
    };
    let rows = match compare::run(&plan) {
        Ok(samples) => compare::summarize(&samples),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", compare::render(&rows));
    write_json(args.json.as_deref(), &rows)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some((name, n)) = args.child {
        let row = reconciler_bench::child(&name, n);
        println!("{}", serde_json::to_string(&row).expect("row serializes"));
        return ExitCode::SUCCESS;
    }
    if let Some(before) = &args.ab {
        return ab_mode(&args, before, args.rounds.unwrap_or(5));
    }
    let wanted = |name: &str| {
        args.filters.is_empty() || args.filters.iter().any(|f| name.contains(f.as_str()))
    };
    if args.scale {
        return scale_mode(&args);
    }
    println!(
        "{:<36} {:>14} {:>10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "name",
        "objects/sec",
        "ns/obj",
        "allocs",
        "bytes",
        "p50us",
        "p90us",
        "p99us",
        "peakRSS",
        "live"
    );
    let mut rows = Vec::new();
    let mut cases = part_benches::cases();
    cases.extend(db_benches::cases());
    cases.extend(lpm_benches::cases());
    for c in cases.iter().filter(|c| wanted(c.name)) {
        let row = harness::run(c, args.mode);
        print_row(&row);
        rows.push(row);
    }
    if wanted("db_changes") && !db_benches::check_changes_graveyard() {
        eprintln!("db_changes: graveyard not empty after dropping the iterator");
        return ExitCode::FAILURE;
    }
    if wanted("db_propagation_delay") {
        let row = db_benches::propagation_delay(args.mode);
        print_row(&row);
        rows.push(row);
    }
    for (name, n) in RECONCILER_ROWS {
        if !wanted(name) {
            continue;
        }
        let n = if args.mode == Mode::Smoke { 10_000 } else { n };
        match run_child_process(name, n) {
            Ok(row) => {
                print_row(&row);
                rows.push(row);
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    write_json(args.json.as_deref(), &rows)
}
