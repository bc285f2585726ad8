//! Order-preserving key encodings: `a < b` exactly when
//! `a.encode() < b.encode()` as byte strings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Key;

/// A type that encodes into a byte key whose order matches the type's own
/// order, so that tree iteration and `lower_bound` follow it.
pub trait KeyEncoding {
    /// Appends the encoded key to `out`.
    fn encode_key(&self, out: &mut Key);

    /// The encoded key.
    fn to_key(&self) -> Key {
        let mut k = Key::new();
        self.encode_key(&mut k);
        k
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl KeyEncoding for $t {
            #[inline]
            fn encode_key(&self, out: &mut Key) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, u128, usize);

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl KeyEncoding for $t {
            /// Flipping the sign bit puts negative numbers first.
            #[inline]
            fn encode_key(&self, out: &mut Key) {
                let flipped = (*self as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
            }
        }
    )*};
}
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128, isize => usize);

impl KeyEncoding for bool {
    fn encode_key(&self, out: &mut Key) {
        out.push(*self as u8);
    }
}

impl KeyEncoding for str {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl KeyEncoding for String {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl KeyEncoding for [u8] {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self);
    }
}

impl KeyEncoding for Vec<u8> {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> KeyEncoding for [u8; N] {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self);
    }
}

impl KeyEncoding for Ipv4Addr {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(&self.octets());
    }
}

impl KeyEncoding for Ipv6Addr {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(&self.octets());
    }
}

impl KeyEncoding for IpAddr {
    /// IPv4 sorts before IPv6, as `IpAddr`'s `Ord` does: a tag byte first.
    fn encode_key(&self, out: &mut Key) {
        match self {
            IpAddr::V4(a) => {
                out.push(4);
                a.encode_key(out);
            }
            IpAddr::V6(a) => {
                out.push(6);
                a.encode_key(out);
            }
        }
    }
}

impl KeyEncoding for SocketAddr {
    /// Address then port, as `SocketAddr`'s `Ord` does.
    fn encode_key(&self, out: &mut Key) {
        self.ip().encode_key(out);
        self.port().encode_key(out);
    }
}

/// Appends `part`'s encoding made self-delimiting: 0x00 escaped as
/// 0x00 0x01, then the terminator 0x00 0x00. The terminator sorts below
/// every continuation, so a component that is a prefix of another sorts
/// first, and comparison moves on to the next component only on equality.
fn encode_component<T: KeyEncoding + ?Sized>(part: &T, out: &mut Key) {
    let mut raw = Key::new();
    part.encode_key(&mut raw);
    for &b in raw.iter() {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

impl<A: KeyEncoding, B: KeyEncoding + ?Sized> KeyEncoding for (A, B) {
    /// Lexicographic by component, as the tuple's `Ord`: every component
    /// but the last is escaped and terminated, so variable-length parts
    /// (strings, bytes) compose too.
    fn encode_key(&self, out: &mut Key) {
        encode_component(&self.0, out);
        self.1.encode_key(out);
    }
}

impl<A: KeyEncoding, B: KeyEncoding, C: KeyEncoding + ?Sized> KeyEncoding for (A, B, C) {
    /// As for pairs: lexicographic by component.
    fn encode_key(&self, out: &mut Key) {
        encode_component(&self.0, out);
        encode_component(&self.1, out);
        self.2.encode_key(out);
    }
}

impl KeyEncoding for ipnet::Ipv4Net {
    /// The network address (host bits cleared) then the prefix length:
    /// ordered by address, shorter prefix first on the same address.
    fn encode_key(&self, out: &mut Key) {
        self.network().encode_key(out);
        out.push(self.prefix_len());
    }
}

impl KeyEncoding for ipnet::Ipv6Net {
    /// The network address (host bits cleared) then the prefix length.
    fn encode_key(&self, out: &mut Key) {
        self.network().encode_key(out);
        out.push(self.prefix_len());
    }
}

impl KeyEncoding for ipnet::IpNet {
    /// IPv4 before IPv6 (a tag byte), then address, then prefix length.
    fn encode_key(&self, out: &mut Key) {
        match self {
            ipnet::IpNet::V4(n) => {
                out.push(4);
                n.encode_key(out);
            }
            ipnet::IpNet::V6(n) => {
                out.push(6);
                n.encode_key(out);
            }
        }
    }
}

impl<T: KeyEncoding + ?Sized> KeyEncoding for &T {
    fn encode_key(&self, out: &mut Key) {
        (**self).encode_key(out);
    }
}

impl<T: KeyEncoding + ?Sized> KeyEncoding for Box<T> {
    fn encode_key(&self, out: &mut Key) {
        (**self).encode_key(out);
    }
}

impl<T: KeyEncoding + ?Sized> KeyEncoding for std::sync::Arc<T> {
    fn encode_key(&self, out: &mut Key) {
        (**self).encode_key(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ordered<T: KeyEncoding + Ord>(a: T, b: T) -> bool {
        a.cmp(&b) == a.to_key().cmp(&b.to_key())
    }

    proptest! {
        #[test]
        fn integers_keep_order(a: i64, b: i64, c: u32, d: u32, e: i8, f: i8) {
            prop_assert!(ordered(a, b));
            prop_assert!(ordered(c, d));
            prop_assert!(ordered(e, f));
        }

        #[test]
        fn strings_and_bytes_keep_order(a: String, b: String, c: Vec<u8>, d: Vec<u8>) {
            prop_assert!(ordered(a, b));
            prop_assert!(ordered(c, d));
        }

        #[test]
        fn addresses_keep_order(a: IpAddr, b: IpAddr, c: SocketAddr, d: SocketAddr) {
            prop_assert!(ordered(a, b));
            prop_assert!(ordered(c, d));
        }

        #[test]
        fn tuples_keep_order(
            a: (String, u16), b: (String, u16),
            c: (Vec<u8>, String, i32), d: (Vec<u8>, String, i32),
            // Small alphabets make equal and prefix components common.
            e in ("[a\\x00]{0,3}", "[a\\x00]{0,3}"), f in ("[a\\x00]{0,3}", "[a\\x00]{0,3}"),
        ) {
            prop_assert!(ordered(a, b));
            prop_assert!(ordered(c, d));
            prop_assert!(ordered(e, f));
        }

        #[test]
        fn ip_prefixes_order_by_network_then_length(
            a: IpAddr, la in 0u8..=128, b: IpAddr, lb in 0u8..=128,
        ) {
            let net = |addr: IpAddr, len: u8| {
                let max = if addr.is_ipv4() { 32 } else { 128 };
                ipnet::IpNet::new(addr, len.min(max)).unwrap().trunc()
            };
            let (x, y) = (net(a, la), net(b, lb));
            prop_assert!(ordered(x, y));
        }
    }

    #[test]
    fn negative_before_positive() {
        assert!((-1i32).to_key() < 0i32.to_key());
        assert!(i64::MIN.to_key() < i64::MAX.to_key());
        assert!(false.to_key() < true.to_key());
    }
}
