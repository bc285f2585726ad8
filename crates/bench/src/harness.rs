//! Measurement: rounds of at least a target duration, median of rounds,
//! allocation counts from a separate counted run.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alloc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Full,
    Quick,
    Smoke,
}

/// One output row; absent values serialize as null.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct Row {
    pub name: String,
    pub objects_per_sec: f64,
    pub ns_per_object: f64,
    pub allocs_per_object: Option<f64>,
    pub bytes_per_object: Option<f64>,
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub live_bytes_after: Option<i64>,
}

/// A benchmark body: runs `iters` iterations, returns objects processed
/// and the time the measured part took.
pub type Body = Box<dyn FnMut(u64) -> (u64, Duration)>;

pub struct Case {
    pub name: &'static str,
    pub setup: Box<dyn Fn() -> Body>,
}

pub fn case(name: &'static str, setup: impl Fn() -> Body + 'static) -> Case {
    Case {
        name,
        setup: Box::new(setup),
    }
}

/// One round: iterations until `target` has passed in measured time.
fn round(body: &mut Body, target: Duration, mode: Mode) -> (u64, Duration) {
    if mode == Mode::Smoke {
        return body(3);
    }
    let mut objects = 0;
    let mut spent = Duration::ZERO;
    let mut iters = 1u64;
    while spent < target {
        let (o, d) = body(iters);
        objects += o;
        spent += d;
        if d < target / 20 {
            iters = iters.saturating_mul(2);
        }
    }
    (objects, spent)
}

pub fn run(case: &Case, mode: Mode) -> Row {
    let (rounds, target) = match mode {
        Mode::Full => (5, Duration::from_secs(1)),
        Mode::Quick => (1, Duration::from_secs(1)),
        Mode::Smoke => (1, Duration::ZERO),
    };
    let mut body = (case.setup)();
    // Warm up, then measure with allocation counting off.
    body(1);
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let (objects, spent) = round(&mut body, target, mode);
            objects as f64 / spent.as_secs_f64().max(1e-12)
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    let rate = rates[rates.len() / 2];
    // A separate counted iteration for allocations.
    let ((objects, _), allocs, bytes) = alloc::counted(|| body(1));
    let per = |x: u64| (objects > 0).then(|| x as f64 / objects as f64);
    Row {
        name: case.name.to_string(),
        objects_per_sec: rate,
        ns_per_object: 1e9 / rate,
        allocs_per_object: per(allocs),
        bytes_per_object: per(bytes),
        ..Row::default()
    }
}

/// Percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e6
}

/// Times `f` and returns the elapsed time with its result's object count.
pub fn timed(f: impl FnOnce() -> u64) -> (u64, Duration) {
    let t = Instant::now();
    let n = f();
    (n, t.elapsed())
}
