//! A wall-clock watchdog for tests on tokio's paused clock: a hot loop
//! stops the paused clock, so virtual deadlines never pass and only real
//! time turns the hang into a failure.

use std::sync::mpsc;
use std::time::Duration;

/// Aborts the test process if dropped no sooner than two minutes of
/// wall-clock time after [`Watchdog::arm`].
pub struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    pub fn arm() -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let name = std::thread::current().name().unwrap_or("test").to_string();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(120))
            {
                eprintln!("watchdog: {name} hung for 120 s of wall-clock time");
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
