//! The seal of the traits users may name but not implement
//! ([`crate::ReadTxnLike`], [`crate::TableHandle`]): only this crate's
//! types implement them.

/// Implemented by the crate's transaction and table types only.
pub trait Sealed {}
