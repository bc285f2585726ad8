#![doc = include_str!("../README.md")]

mod reflector;
mod writer;

pub use etcd_client;
pub use reflector::{
    DecodeError, Reflector, ReflectorHandle, ReflectorLoop, ReflectorStats, StatsHandle,
};
pub use writer::Writer;

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Reflector<u32>>();
    send_sync::<ReflectorHandle>();
    send_sync::<Writer>();
};
