//! `memos`: the example application. Memos `{ name, content, status }` live
//! in a statedb table; a reconciler writes each memo to `<dir>/<name>`,
//! retries failures, prunes stray files; an HTTP API edits memos and shows
//! their status, the database, metrics and health.
//!
//! Modules, each using only those above it: `memo` (the table and names),
//! `store` (the durable state), `target` (the files), `app` (settings,
//! shared state, setup errors), `respond` (answers), `etcd` (feature
//! `etcd`: the reflector and writes through etcd), `setup` (building it
//! all), `http` (the API).

pub mod memo;

pub mod store;

pub mod target;

mod app;

mod respond;

#[cfg(feature = "etcd")]
mod etcd;

mod setup;

mod http;

// the HTTP/1 server loop with its limits
mod serve;

pub use app::{App, Desired, Options, SetupError, stopped};
pub use http::{BODY_TIMEOUT, browser_guard, router, router_with_shutdown};
pub use memo::{MAX_CONTENT, Memo, MemoTable, validate_name};
pub use serve::{ServeLimits, serve};
pub use setup::build;
pub use store::{Store, StoreError, default_state_dir};
pub use target::{FileTarget, prepare_directory};
