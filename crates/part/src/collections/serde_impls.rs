//! `serde` support for [`Map`] and [`Set`] (feature `serde`): a map as a
//! map, a set as a sequence, in key order.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Map, Set};
use crate::{KeyEncoding, Tree};

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<K: Serialize, V: Serialize> Serialize for Map<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de, K, V> Deserialize<'de> for Map<K, V>
where
    K: Deserialize<'de> + KeyEncoding + Clone + Send + Sync + 'static,
    V: Deserialize<'de> + Clone + Send + Sync + 'static,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<K, V>(PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for V_<K, V>
        where
            K: Deserialize<'de> + KeyEncoding + Clone + Send + Sync + 'static,
            V: Deserialize<'de> + Clone + Send + Sync + 'static,
        {
            type Value = Map<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Map<K, V>, A::Error> {
                let mut txn = Tree::new_root_only_watch().txn();
                while let Some((k, v)) = a.next_entry::<K, V>()? {
                    txn.insert(&k.to_key(), (k, v));
                }
                Ok(Map {
                    tree: txn.commit_and_close(),
                })
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<T: Serialize> Serialize for Set<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for t in self.iter() {
            seq.serialize_element(t)?;
        }
        seq.end()
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de, T> Deserialize<'de> for Set<T>
where
    T: Deserialize<'de> + KeyEncoding + Clone + Send + Sync + 'static,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<T>(PhantomData<T>);
        impl<'de, T> Visitor<'de> for V_<T>
        where
            T: Deserialize<'de> + KeyEncoding + Clone + Send + Sync + 'static,
        {
            type Value = Set<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Set<T>, A::Error> {
                let mut txn = Tree::new_root_only_watch().txn();
                while let Some(t) = a.next_element::<T>()? {
                    txn.insert(&t.to_key(), t);
                }
                Ok(Set {
                    tree: txn.commit_and_close(),
                })
            }
        }
        d.deserialize_seq(V_(PhantomData))
    }
}
