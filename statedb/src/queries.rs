//! The query kinds beyond get/list/prefix/lower_bound: reverse order,
//! `last`, `count`, and longest-prefix match over IP prefixes.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::error::{Result, TxnError};
use crate::index::{Index, IndexPos, Query, exact_search_key, range_search_key};
use crate::objects::{Found, Objects};
use crate::table::{Table, dedup_lpm};
use crate::view::ReadTxnLike;

impl<T: Send + Sync + 'static> Table<T> {
    /// The tree search of a query in reverse: `(key to search, exact)`.
    fn rev_key(&self, q: &Query<T>, pos: IndexPos, exact: bool) -> part::Key {
        if exact {
            exact_search_key(pos.unique(), q.key())
        } else {
            range_search_key(pos.unique(), q.key().into())
        }
    }

    /// [`Table::list`] in reverse index order (on a non-unique index:
    /// descending primary key).
    ///
    /// # Errors
    ///
    /// The table is not registered with the transaction's Db, or has no
    /// such index.
    pub fn list_rev(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>, TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner().index_pos(q.index_name())?;
        let Some(key) = view.exact_key(pos, q.key()) else {
            return Ok(Objects::one(None));
        };
        if pos.unique() {
            return Ok(Objects::one(view.first(pos, &key)));
        }
        let key = exact_search_key(false, &key);
        Ok(Objects::rev(view.tree(pos).prefix_owned_rev(&key), None))
    }

    /// [`Table::prefix`] in reverse key order (without the watch).
    ///
    /// # Errors
    ///
    /// As [`Table::list_rev`].
    pub fn prefix_rev(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Objects<T>, TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner().index_pos(q.index_name())?;
        let key = self.rev_key(&q, pos, false);
        Ok(dedup_lpm(
            pos,
            Objects::rev(view.tree(pos).prefix_owned_rev(&key), None),
        ))
    }

    /// The objects of [`Table::lower_bound`] (keys at or above `q`'s) in
    /// descending key order: from the greatest key down to `q`'s.
    ///
    /// # Errors
    ///
    /// As [`Table::list_rev`].
    pub fn lower_bound_rev(
        &self,
        txn: &impl ReadTxnLike,
        q: Query<T>,
    ) -> Result<Objects<T>, TxnError> {
        let view = self.view(txn)?;
        let pos = self.inner().index_pos(q.index_name())?;
        let key = self.rev_key(&q, pos, false);
        Ok(dedup_lpm(
            pos,
            Objects::rev(view.tree(pos).into_owned_rev_iter(), Some(key)),
        ))
    }

    /// Every object in descending primary key order.
    ///
    /// # Errors
    ///
    /// The table is not registered with the transaction's Db.
    pub fn all_rev(&self, txn: &impl ReadTxnLike) -> Result<Objects<T>, TxnError> {
        let view = self.view(txn)?;
        Ok(Objects::rev(
            view.tree(IndexPos::Primary).into_owned_rev_iter(),
            None,
        ))
    }

    /// The last object matching `q` in index order (the first of
    /// [`Table::list_rev`]).
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// let by_id: Index<(u32, &'static str), u32> = Index::unique("id", |o: &(u32, &str), k| k.push(&o.0));
    /// let by_dev: Index<(u32, &'static str), str> = Index::non_unique("dev", |o: &(u32, &str), k| k.push(o.1));
    /// let t = Table::builder("routes", &by_id).index(&by_dev).build()?;
    /// let db = Db::new();
    /// db.register_table(&t)?;
    /// let mut w = db.write_txn(&[&t])?;
    /// for (id, dev) in [(1, "eth0"), (2, "eth1"), (3, "eth0")] {
    ///     t.insert(&mut w, (id, dev))?;
    /// }
    /// let r = w.commit();
    /// assert_eq!(t.last(&r, by_dev.query("eth0"))?.unwrap().0.0, 3);
    /// assert_eq!(t.count(&r, by_dev.query("eth0"))?, 2);
    /// let ids: Vec<u32> = t.all_rev(&r)?.map(|(o, _)| o.0).collect();
    /// assert_eq!(ids, [3, 2, 1]);
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Table::list_rev`].
    pub fn last(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<Found<T>, TxnError> {
        Ok(self.list_rev(txn, q)?.next())
    }

    /// How many objects match `q` exactly (the length of [`Table::list`]),
    /// counted without touching the objects.
    ///
    /// # Errors
    ///
    /// As [`Table::list_rev`].
    pub fn count(&self, txn: &impl ReadTxnLike, q: Query<T>) -> Result<usize, TxnError> {
        Ok(self.list(txn, q)?.count())
    }

    /// Longest-prefix match on a plain `IpNet` index: the objects whose
    /// prefix in `index` is the longest one containing `addr` (all of
    /// them, on a non-unique index), or nothing if no prefix contains it.
    /// Up to 33 or 129 exact lookups and no watch: for a table queried
    /// this way, declare a [`crate::LpmIndex`] instead (one descent, a
    /// watch, any bit string). IPv4 addresses match only IPv4
    /// prefixes, IPv6 only IPv6 (an IPv4-mapped IPv6 address is IPv6).
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// use ipnet::IpNet;
    /// #[derive(Debug)]
    /// struct Route { dst: IpNet, via: &'static str }
    /// let by_dst: Index<Route, IpNet> = Index::unique("dst", |r: &Route, k| k.push(&r.dst));
    /// let routes = Table::new("routes", &by_dst)?;
    /// let db = Db::new();
    /// db.register_table(&routes)?;
    /// let mut w = db.write_txn(&[&routes])?;
    /// routes.insert(&mut w, Route { dst: "0.0.0.0/0".parse().unwrap(), via: "gw" })?;
    /// routes.insert(&mut w, Route { dst: "10.0.0.0/8".parse().unwrap(), via: "vpn" })?;
    /// let r = w.commit();
    /// let hit = |a: &str| routes.longest_prefix_match(&r, &by_dst, a.parse().unwrap()).unwrap().next().map(|(o, _)| o.via);
    /// assert_eq!(hit("10.1.2.3"), Some("vpn"));
    /// assert_eq!(hit("192.0.2.1"), Some("gw"));
    /// assert_eq!(hit("::1"), None);
    /// # Ok::<(), statedb::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Table::list_rev`].
    pub fn longest_prefix_match(
        &self,
        txn: &impl ReadTxnLike,
        index: &Index<T, IpNet>,
        addr: IpAddr,
    ) -> Result<Objects<T>, TxnError> {
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        // From the longest prefix down: the first length with a match
        // wins. At most 33 (IPv4) or 129 (IPv6) exact lookups.
        for len in (0..=max).rev() {
            let Ok(net) = IpNet::new(addr, len) else {
                continue;
            };
            let found = self.list(txn, index.query(&net.trunc()))?;
            let found: Vec<_> = found.into_objects().collect();
            if !found.is_empty() {
                return Ok(Objects::from_vec(found));
            }
        }
        Ok(Objects::from_vec(Vec::new()))
    }

    /// The objects whose prefix in `index` lies within `net` (equal to it
    /// or more specific), in index order: "every route inside 10.0.0.0/8".
    /// An object with several keys within is listed once, at the first.
    ///
    /// # Errors
    ///
    /// As [`Table::list_rev`].
    pub fn prefixes_within(
        &self,
        txn: &impl ReadTxnLike,
        index: &Index<T, IpNet>,
        net: IpNet,
    ) -> Result<Objects<T>, TxnError> {
        let net = net.trunc();
        // Keys are (family, network address, length): those within `net`
        // lie from (family, net address, net length) on, up to the first
        // network address outside it.
        let (objects, _) = self.lower_bound(txn, index.query(&net))?;
        let mut out = Vec::new();
        // An object with several keys within is met once per key.
        let mut seen = std::collections::HashSet::new();
        let keys = index.inner().clone();
        for o in objects.into_objects() {
            let nets: Vec<Option<IpNet>> = keys.keys_of(&o.data).iter().map(decode_net).collect();
            let inside = nets.iter().flatten().any(|n| net.contains(n));
            let past = nets
                .iter()
                .all(|n| n.is_none_or(|n| !net.contains(&n.network())));
            if inside {
                if seen.insert(Arc::as_ptr(&o.data)) {
                    out.push(o);
                }
            } else if past {
                break;
            }
        }
        Ok(Objects::from_vec(out))
    }
}

/// Decodes an [`IpNet`] key (family tag, network address, length).
fn decode_net(key: &[u8]) -> Option<IpNet> {
    match key {
        [4, a, b, c, d, len] => IpNet::new(IpAddr::from([*a, *b, *c, *d]), *len).ok(),
        [6, rest @ ..] if rest.len() == 17 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&rest[..16]);
            IpNet::new(IpAddr::from(octets), rest[16]).ok()
        }
        _ => None,
    }
}
