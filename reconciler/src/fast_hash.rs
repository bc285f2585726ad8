//! Hash maps keyed by primary keys on the runner's hot path: every
//! object goes through several of them per operation, and the standard
//! SipHash showed in profiles. foldhash is seeded per process at random.

pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
