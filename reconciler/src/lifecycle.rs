//! A small application lifecycle: start hooks and jobs in order, stop them
//! in reverse order, waiting for each job to exit.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Errors of hooks and of the lifecycle.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type JobFn = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// A start/stop pair run by the [`Lifecycle`]; implement the methods as
/// `async fn`.
pub trait Hook: Send + Sync + 'static {
    /// Starts; an error stops what already started and fails the start.
    fn start(&self) -> impl Future<Output = Result<(), BoxError>> + Send;
    /// Stops; called in reverse start order.
    fn stop(&self) -> impl Future<Output = ()> + Send;
}

/// [`Hook`] made object-safe, for storing any hook.
trait DynHook: Send + Sync {
    fn start(&self) -> BoxFuture<'_, Result<(), BoxError>>;
    fn stop(&self) -> BoxFuture<'_, ()>;
}

impl<T: Hook> DynHook for T {
    fn start(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(Hook::start(self))
    }
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(Hook::stop(self))
    }
}

/// Lifecycle errors.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// A hook failed to start; what had started was stopped again.
    #[error("start hook {name:?} failed: {source}")]
    StartFailed {
        /// Name of the hook.
        name: String,
        /// Its error.
        source: BoxError,
    },
    /// `start` was called twice.
    #[error("lifecycle already started")]
    AlreadyStarted,
    /// `start` was called outside a tokio runtime.
    #[error("lifecycle must be started inside a tokio runtime")]
    NoRuntime,
}

enum Entry {
    Hook(String, Arc<dyn DynHook>),
    Job(String, Option<JobFn>),
}

enum Running {
    Hook(Arc<dyn DynHook>),
    Job(String, CancellationToken, JoinHandle<()>),
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    running: Vec<Running>,
    started: bool,
    /// The runtime it was started on: jobs added later are spawned there.
    runtime: Option<tokio::runtime::Handle>,
    stopped: bool,
}

/// Starts hooks and jobs (reconcilers, or any task of the application) on
/// the current tokio runtime, in the order they were added, and stops them
/// in reverse order. Stopping a job cancels its token and waits for it to
/// exit. Cheap to clone; clones share the same lifecycle.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use reconciler::Lifecycle;
/// let lc = Lifecycle::new();
/// lc.add_job("ticker", |cancel| async move { cancel.cancelled().await });
/// lc.start().await.unwrap();
/// lc.stop().await; // returns once the job has exited
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Lifecycle {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Lifecycle")
            .field("entries", &inner.entries.len())
            .field("running", &inner.running.len())
            .finish()
    }
}

impl Lifecycle {
    /// An empty lifecycle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hook, started by [`Lifecycle::start`]. Add hooks before
    /// starting: a lifecycle starts once, so a hook added later never runs
    /// (jobs added later do, see [`Lifecycle::add_job`]).
    pub fn add_hook(&self, name: &str, hook: impl Hook) {
        self.inner
            .lock()
            .entries
            .push(Entry::Hook(name.to_string(), Arc::new(hook)));
    }

    /// Adds a job: on start, `job` is spawned with a cancellation token
    /// that is cancelled on stop; stop waits for the job to return. A job
    /// added while the lifecycle runs is spawned at once (like the
    /// reference's job groups); one added after stop never runs.
    pub fn add_job<F, Fut>(&self, name: &str, job: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: JobFn = Box::new(move |c| Box::pin(job(c)));
        let mut inner = self.inner.lock();
        if inner.stopped {
            tracing::warn!(job = %name, "job added to a stopped lifecycle does not run");
            return;
        }
        match inner.runtime.clone() {
            Some(rt) if inner.started => {
                let token = CancellationToken::new();
                let handle = rt.spawn(f(token.clone()));
                tracing::debug!(job = %name, "job started");
                inner
                    .running
                    .push(Running::Job(name.to_string(), token, handle));
            }
            _ => inner.entries.push(Entry::Job(name.to_string(), Some(f))),
        }
    }

    /// Starts every hook and job in order. On a failing hook, stops what
    /// started (in reverse) and returns the error.
    pub async fn start(&self) -> Result<(), LifecycleError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(LifecycleError::NoRuntime);
        };
        let entries = {
            let mut inner = self.inner.lock();
            if inner.started {
                return Err(LifecycleError::AlreadyStarted);
            }
            inner.started = true;
            inner.runtime = Some(runtime);
            std::mem::take(&mut inner.entries)
        };
        for entry in entries {
            match entry {
                Entry::Hook(name, hook) => {
                    // A panicking hook fails the start like an error.
                    let started = AssertUnwindSafe(hook.start()).catch_unwind().await;
                    let started = started.unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        Err(format!("start hook panicked: {msg}").into())
                    });
                    if let Err(source) = started {
                        self.stop().await;
                        return Err(LifecycleError::StartFailed { name, source });
                    }
                    self.inner.lock().running.push(Running::Hook(hook));
                }
                Entry::Job(name, job) => {
                    let Some(job) = job else { continue };
                    let token = CancellationToken::new();
                    let handle = tokio::spawn(job(token.clone()));
                    tracing::debug!(job = %name, "job started");
                    self.inner
                        .lock()
                        .running
                        .push(Running::Job(name, token, handle));
                }
            }
        }
        Ok(())
    }

    /// Stops everything started, in reverse order, waiting for each job to
    /// exit. A job that panicked is logged, not propagated.
    pub async fn stop(&self) {
        self.inner.lock().stopped = true;
        loop {
            let next = self.inner.lock().running.pop();
            match next {
                None => break,
                Some(Running::Hook(h)) => {
                    if AssertUnwindSafe(h.stop()).catch_unwind().await.is_err() {
                        tracing::error!("stop hook panicked");
                    }
                }
                Some(Running::Job(name, token, handle)) => {
                    token.cancel();
                    if let Err(e) = handle.await {
                        tracing::error!(job = %name, error = %e, "job failed");
                    }
                    tracing::debug!(job = %name, "job stopped");
                }
            }
        }
    }

    /// Number of hooks and jobs currently running.
    pub fn running(&self) -> usize {
        self.inner.lock().running.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    struct Recording(&'static str, Arc<Mutex<Vec<String>>>, bool);

    impl Hook for Recording {
        async fn start(&self) -> Result<(), BoxError> {
            self.1.lock().push(format!("start {}", self.0));
            if self.2 {
                Err("refused".into())
            } else {
                Ok(())
            }
        }
        async fn stop(&self) {
            self.1.lock().push(format!("stop {}", self.0));
        }
    }

    #[tokio::test]
    async fn starts_in_order_stops_in_reverse_and_waits_for_jobs() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let lc = Lifecycle::new();
        lc.add_hook("a", Recording("a", log.clone(), false));
        let l2 = log.clone();
        lc.add_job("job", move |cancel| async move {
            cancel.cancelled().await;
            tokio::task::yield_now().await;
            l2.lock().push("job exited".into());
        });
        lc.add_hook("b", Recording("b", log.clone(), false));
        lc.start().await.unwrap();
        assert_eq!(lc.running(), 3);
        assert!(matches!(
            lc.start().await,
            Err(LifecycleError::AlreadyStarted)
        ));
        lc.stop().await;
        assert_eq!(
            *log.lock(),
            ["start a", "start b", "stop b", "job exited", "stop a"]
        );
        assert_eq!(lc.running(), 0);
    }

    #[tokio::test]
    async fn failed_start_stops_what_started() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let lc = Lifecycle::new();
        lc.add_hook("a", Recording("a", log.clone(), false));
        lc.add_hook("b", Recording("b", log.clone(), true));
        lc.add_hook("c", Recording("c", log.clone(), false));
        let err = lc.start().await.unwrap_err();
        assert!(err.to_string().contains("\"b\""), "{err}");
        assert_eq!(*log.lock(), ["start a", "start b", "stop a"]);
    }

    #[tokio::test]
    async fn jobs_added_after_start_run_and_stop() {
        let lc = Lifecycle::new();
        lc.start().await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        lc.add_job("late", move |cancel| async move {
            let _ = tx.send(());
            cancel.cancelled().await;
        });
        rx.await.expect("a job added after start runs");
        assert_eq!(lc.running(), 1);
        lc.stop().await;
        assert_eq!(lc.running(), 0);
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        lc.add_job("after stop", move |_| async move {
            r2.store(true, Ordering::SeqCst)
        });
        tokio::task::yield_now().await;
        assert!(!ran.load(Ordering::SeqCst), "no job runs after stop");
    }

    struct Panicking;

    impl Hook for Panicking {
        async fn start(&self) -> Result<(), BoxError> {
            panic!("hook exploded")
        }
        async fn stop(&self) {}
    }

    #[tokio::test]
    async fn panicking_hook_fails_the_start() {
        let lc = Lifecycle::new();
        lc.add_hook("p", Panicking);
        let err = lc.start().await.unwrap_err();
        assert!(err.to_string().contains("hook exploded"), "{err}");
    }

    #[test]
    fn start_outside_runtime_is_an_error() {
        let lc = Lifecycle::new();
        let r = futures::executor::block_on(lc.start());
        assert!(matches!(r, Err(LifecycleError::NoRuntime)));
    }
}
