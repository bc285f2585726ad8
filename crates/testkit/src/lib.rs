//! Test kit: operation programs decoded from raw bytes and checked against
//! simple models, for fuzzing.
//!
//! Each entry point takes any byte string, decodes it into a program of
//! operations, runs it, and panics if the system under test ever disagrees
//! with its model. Nothing here panics for any other reason, so a fuzzer
//! (`crates/fuzz`, cargo-fuzz) reports every panic as a finding, and the
//! saved corpus is replayed by the ordinary test `tests/corpus.rs`.
//!
//! - [`tree_program`]: `part` transactions, snapshots, queries and watches
//!   against a `BTreeMap`.
//! - [`db_program`]: two `statedb` tables with a non-unique multi-key index,
//!   write transactions, compare-and-swap, change iterators and the
//!   graveyard against a model.
//! - [`key_encoding`]: the `KeyEncoding` implementations: injective (so they
//!   round-trip) and order preserving, through `part::Map` as well.
//!
//! ```
//! // Any bytes are a valid program.
//! testkit::tree_program(b"\x00\x01\x02\x03\x03\x08");
//! testkit::db_program(&[7, 1, 2, 3, 4, 5, 6, 0, 3]);
//! testkit::key_encoding(b"some bytes");
//! ```

mod db;
mod encoding;
mod input;
mod tree;

pub use db::db_program;
pub use encoding::key_encoding;
pub use tree::tree_program;

/// The workspace README's Rust examples, compiled and run as doctests so
/// that they stay true (here, in a crate that is not published, because
/// the README is outside every published crate).
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
