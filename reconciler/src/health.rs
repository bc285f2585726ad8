//! Health reporting: the reconciler reports OK or degraded after each
//! round; [`HealthReporter`] keeps the latest report to be read.

use std::time::SystemTime;

use parking_lot::Mutex;

/// Receives health reports. Implement it to forward reports to your own
/// health system, or use [`HealthReporter`].
pub trait Health: Send + Sync {
    /// All is well.
    fn ok(&self, message: &str);
    /// Something is failing: `error` holds the (joined) errors.
    fn degraded(&self, message: &str, error: &str);
    /// The reporter has stopped (on shutdown).
    fn stopped(&self, message: &str) {
        let _ = message;
    }
}

/// Health level of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthLevel {
    /// Working.
    Ok,
    /// Failing.
    Degraded,
    /// Stopped.
    Stopped,
}

/// One health report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthReport {
    /// The level.
    pub level: HealthLevel,
    /// A short message, e.g. `OK, 3 object(s)`.
    pub message: String,
    /// The errors, when degraded.
    pub error: Option<String>,
    /// When reported.
    pub updated_at: SystemTime,
}

/// Keeps the latest health report; cheap to read from a health endpoint.
///
/// ```
/// use reconciler::{Health, HealthLevel, HealthReporter};
/// let h = HealthReporter::new();
/// assert!(h.latest().is_none());
/// h.degraded("Reconciliation failed", "boom");
/// assert_eq!(h.latest().unwrap().level, HealthLevel::Degraded);
/// h.ok("OK, 1 object(s)");
/// assert!(h.is_ok());
/// ```
#[derive(Debug, Default)]
pub struct HealthReporter {
    latest: Mutex<Option<HealthReport>>,
}

impl HealthReporter {
    /// No report yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest report, if any.
    pub fn latest(&self) -> Option<HealthReport> {
        self.latest.lock().clone()
    }

    /// True if the latest report is OK.
    pub fn is_ok(&self) -> bool {
        self.latest
            .lock()
            .as_ref()
            .is_some_and(|r| r.level == HealthLevel::Ok)
    }

    fn set(&self, level: HealthLevel, message: &str, error: Option<&str>) {
        *self.latest.lock() = Some(HealthReport {
            level,
            message: message.to_string(),
            error: error.map(str::to_string),
            updated_at: SystemTime::now(),
        });
    }
}

impl Health for HealthReporter {
    fn ok(&self, message: &str) {
        self.set(HealthLevel::Ok, message, None);
    }
    fn degraded(&self, message: &str, error: &str) {
        self.set(HealthLevel::Degraded, message, Some(error));
    }
    fn stopped(&self, message: &str) {
        self.set(HealthLevel::Stopped, message, None);
    }
}

/// At most this many errors are joined into a degraded report.
pub const MAX_JOINED_ERRORS: usize = 10;

/// Joins errors one per line; past [`MAX_JOINED_ERRORS`], the rest are
/// counted as "N further errors omitted".
pub fn join_errors<'a>(errs: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut omitted = 0usize;
    for (i, e) in errs.into_iter().enumerate() {
        if i >= MAX_JOINED_ERRORS {
            omitted += 1;
            continue;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(e);
    }
    if omitted > 0 {
        out.push_str(&format!("\n{omitted} further errors omitted"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_caps_at_ten() {
        let errs: Vec<String> = (0..13).map(|i| format!("e{i}")).collect();
        let j = join_errors(errs.iter().map(String::as_str));
        assert_eq!(j.lines().count(), 11);
        assert!(j.ends_with("3 further errors omitted"));
        assert_eq!(join_errors(["a", "b"]), "a\nb");
    }
}
