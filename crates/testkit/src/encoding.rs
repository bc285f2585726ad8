//! The `KeyEncoding` implementations: injective and order preserving.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use part::{KeyEncoding, Map};

use crate::input::Input;

/// Checks, for values decoded from `data`, every `KeyEncoding` the crate
/// ships: two values compare as their encodings do (so index order is
/// value order), equal encodings mean equal values (so a key identifies
/// its value: the encoding round-trips), and a `part::Map` keyed by them
/// returns each value under its own key, in order. Panics on a violation.
pub fn key_encoding(data: &[u8]) {
    let mut input = Input::new(data);
    let mut rounds = 0;
    while !input.is_empty() && rounds < 64 {
        rounds += 1;
        match input.below(11) {
            0 => pairs(&mut input, |i| u8::from_be_bytes(i.bytes())),
            1 => pairs(&mut input, |i| u16::from_be_bytes(i.bytes())),
            2 => pairs(&mut input, |i| u64::from_be_bytes(i.bytes())),
            3 => pairs(&mut input, |i| i8::from_be_bytes(i.bytes())),
            4 => pairs(&mut input, |i| i32::from_be_bytes(i.bytes())),
            5 => pairs(&mut input, |i| i64::from_be_bytes(i.bytes())),
            6 => pairs(&mut input, |i| i128::from_be_bytes(i.bytes())),
            7 => pairs(&mut input, |i| i.bool()),
            8 => pairs(&mut input, |i| {
                String::from_utf8_lossy(&i.raw(12)).into_owned()
            }),
            9 => pairs(&mut input, |i| i.raw(12)),
            _ => {
                if input.bool() {
                    pairs(&mut input, ip);
                } else {
                    pairs(&mut input, |i| {
                        SocketAddr::new(ip(i), u16::from_be_bytes(i.bytes()))
                    });
                }
            }
        }
    }
}

fn ip(input: &mut Input) -> IpAddr {
    if input.bool() {
        IpAddr::V4(Ipv4Addr::from(input.bytes::<4>()))
    } else {
        IpAddr::V6(Ipv6Addr::from(input.bytes::<16>()))
    }
}

/// Draws a few values and checks every pair, then the map round trip.
fn pairs<T, F>(input: &mut Input, mut draw: F)
where
    T: KeyEncoding + Ord + Clone + Debug + Send + Sync + 'static,
    F: FnMut(&mut Input) -> T,
{
    let n = 1 + input.below(4);
    let values: Vec<T> = (0..n).map(|_| draw(input)).collect();
    for a in &values {
        for b in &values {
            let (ka, kb) = (a.to_key(), b.to_key());
            assert_eq!(
                a.cmp(b),
                ka.cmp(&kb),
                "order of {a:?} and {b:?}: {ka:?} vs {kb:?}"
            );
        }
    }
    let mut map = Map::new();
    for (i, v) in values.iter().enumerate() {
        map.insert_mut(v.clone(), i);
    }
    let mut want: Vec<(T, usize)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match want.iter_mut().find(|(w, _)| w == v) {
            Some(slot) => slot.1 = i,
            None => want.push((v.clone(), i)),
        }
    }
    want.sort();
    let got: Vec<(T, usize)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(got, want, "map round trip");
    for (k, i) in &want {
        assert_eq!(map.get(k), Some(i), "map get {k:?}");
    }
}
