#![doc = include_str!("../README.md")]

mod error;

mod table;

mod changes;

pub use changes::{ChangeStream, Event, Reconnect, ResyncReason};
pub use error::ClientError;
pub use table::{
    Client, IndexSummary, LockHolderSummary, Op, RemoteObject, RemoteTable, Rows, TableSummary,
};

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Client>();
    send_sync::<RemoteTable<u8>>();
    send_sync::<ClientError>();
};
