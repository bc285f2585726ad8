//! A wall-clock watchdog for tests on tokio's paused clock: a hot loop
//! stops the paused clock, so virtual deadlines never pass and only real
//! time turns the hang into a failure.

use std::sync::mpsc;
use std::time::Duration;

/// Aborts the test process if not dropped within two minutes (or the
/// time given to [`Watchdog::arm_for`]) of wall-clock time.
pub struct Watchdog(Option<mpsc::Sender<()>>);

#[allow(dead_code)] // each test binary uses one of the two
impl Watchdog {
    pub fn arm() -> Self {
        Self::arm_for(Duration::from_secs(120))
    }

    pub fn arm_for(limit: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let name = std::thread::current().name().unwrap_or("test").to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: {name} hung for {limit:?} of wall-clock time");
                std::process::abort();
            }
        });
        Watchdog(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}
