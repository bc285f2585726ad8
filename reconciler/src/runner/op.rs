//! Running one operation: catch a panic, time it, record the metric.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::time::Instant;

use super::Runner;
use crate::ops::OpError;

/// Which round an operation ran in, for its duration metric.
#[derive(Clone, Copy, Debug)]
pub(super) enum Round {
    Incremental,
    Full,
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("operation panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("operation panicked: {s}")
    } else {
        "operation panicked".to_string()
    }
}

impl<Obj: Clone + Send + Sync + 'static> Runner<Obj> {
    /// Runs one operation (`op` names it in metrics): a panic becomes an
    /// error, and its duration is recorded when metrics are on. Timed only
    /// then: a clock read per operation shows at a million objects per
    /// second.
    pub(super) async fn run_op<T>(
        &self,
        round: Round,
        op: &'static str,
        f: impl Future<Output = Result<T, OpError>>,
    ) -> Result<T, String> {
        let start = self.metrics.as_ref().map(|_| Instant::now());
        let result = match AssertUnwindSafe(f).catch_unwind().await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(p) => Err(panic_message(p)),
        };
        if let (Some(m), Some(start)) = (&self.metrics, start) {
            let took = start.elapsed();
            match round {
                Round::Incremental => {
                    m.incremental_reconciliation_duration(&self.module_id, op, took)
                }
                Round::Full => m.full_reconciliation_duration(&self.module_id, op, took),
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_payloads_become_messages() {
        assert_eq!(panic_message(Box::new("boom")), "operation panicked: boom");
        assert_eq!(
            panic_message(Box::new(String::from("bang"))),
            "operation panicked: bang"
        );
        assert_eq!(panic_message(Box::new(7u8)), "operation panicked");
    }
}
