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

    /// Parses a key written as text (`"42"`, `"eth0"`, `"10.0.0.0/8"`,
    /// `"web,3"` for a pair) and appends its encoding to `out`, exactly as
    /// [`KeyEncoding::encode_key`] of the parsed value would: what
    /// inspection tools use to query an index by a key typed by a person.
    ///
    /// # Errors
    ///
    /// [`ParseKeyError`] when the text is not a key of this type, or when
    /// the type does not say how to parse one (the default).
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        let _ = (text, out);
        Err(ParseKeyError::unsupported(std::any::type_name::<Self>()))
    }

    /// Parses a key written as text for a *prefix* search: appends the
    /// bytes every matching key starts with, and returns a filter the
    /// encoded keys found must also pass, for key types whose prefix is
    /// not a byte prefix of the encoding. IP prefixes use it: the prefix
    /// `10.0.0.0/8` finds every network within it (`10.1.0.0/16`, …).
    /// The default is [`KeyEncoding::parse_key`] without a filter.
    ///
    /// # Errors
    ///
    /// As [`KeyEncoding::parse_key`].
    fn parse_prefix(text: &str, out: &mut Key) -> Result<Option<KeyFilter>, ParseKeyError> {
        Self::parse_key(text, out).map(|()| None)
    }

    /// An encoded key written back as text, the way
    /// [`KeyEncoding::parse_key`] reads it (`10.0.0.0/24` for a network,
    /// `2` for a `u64`), for messages and inspection. `None` when the
    /// bytes are not an encoding of this type, or when the type does not
    /// say how to print one (the default); callers fall back to
    /// [`format_key_bytes`].
    fn format_key(encoded: &[u8]) -> Option<String> {
        let _ = encoded;
        None
    }
}

/// Key bytes as text when nothing better is known: the text itself when
/// it is printable UTF-8, else `0x` and hex digits (which
/// `<[u8]>::parse_key` reads back).
pub fn format_key_bytes(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.is_empty() && !s.starts_with("0x") && !s.chars().any(char::is_control) => {
            s.to_string()
        }
        _ => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// `N` bytes exactly, or `None`.
fn exact<const N: usize>(encoded: &[u8]) -> Option<[u8; N]> {
    encoded.try_into().ok()
}

/// A test on encoded keys ([`KeyEncoding::parse_prefix`]).
pub type KeyFilter = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// A key given as text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseKeyError {
    message: String,
}

impl ParseKeyError {
    /// `text` is not a valid `expected` (a type or format name).
    pub fn invalid(text: &str, expected: &str) -> Self {
        ParseKeyError {
            message: format!("{text:?} is not a valid {expected}"),
        }
    }

    /// The key type cannot be parsed from text.
    pub fn unsupported(type_name: &str) -> Self {
        ParseKeyError {
            message: format!("keys of type {type_name} cannot be given as text"),
        }
    }
}

impl std::fmt::Display for ParseKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseKeyError {}

/// `T::from_str(text)` then its encoding.
/// `text` parsed with `FromStr`, or the error naming `expected`.
fn parse_text<T: std::str::FromStr>(text: &str, expected: &str) -> Result<T, ParseKeyError> {
    text.trim()
        .parse()
        .map_err(|_| ParseKeyError::invalid(text, expected))
}

fn parse_via_from_str<T: std::str::FromStr + KeyEncoding>(
    text: &str,
    out: &mut Key,
    expected: &str,
) -> Result<(), ParseKeyError> {
    let value: T = text
        .trim()
        .parse()
        .map_err(|_| ParseKeyError::invalid(text, expected))?;
    value.encode_key(out);
    Ok(())
}

/// Bytes given as text: `0x` then hex digits, or the text's own bytes.
fn parse_bytes(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
    let Some(hex) = text.strip_prefix("0x") else {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    };
    if hex.len() % 2 != 0 {
        return Err(ParseKeyError::invalid(text, "hex byte string"));
    }
    for pair in hex.as_bytes().chunks(2) {
        let digits = std::str::from_utf8(pair)
            .map_err(|_| ParseKeyError::invalid(text, "hex byte string"))?;
        let b = u8::from_str_radix(digits, 16)
            .map_err(|_| ParseKeyError::invalid(text, "hex byte string"))?;
        out.push(b);
    }
    Ok(())
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl KeyEncoding for $t {
            #[inline]
            fn encode_key(&self, out: &mut Key) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
                parse_via_from_str::<$t>(text, out, stringify!($t))
            }
            fn format_key(encoded: &[u8]) -> Option<String> {
                exact(encoded).map(|b| <$t>::from_be_bytes(b).to_string())
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
            fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
                parse_via_from_str::<$t>(text, out, stringify!($t))
            }
            fn format_key(encoded: &[u8]) -> Option<String> {
                let flipped = <$u>::from_be_bytes(exact(encoded)?);
                Some(((flipped ^ (1 << (<$u>::BITS - 1))) as $t).to_string())
            }
        }
    )*};
}
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128, isize => usize);

impl KeyEncoding for bool {
    fn encode_key(&self, out: &mut Key) {
        out.push(*self as u8);
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<bool>(text, out, "bool")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        match encoded {
            [0] => Some("false".into()),
            [1] => Some("true".into()),
            _ => None,
        }
    }
}

impl KeyEncoding for str {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self.as_bytes());
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        std::str::from_utf8(encoded).ok().map(str::to_string)
    }
}

impl KeyEncoding for String {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self.as_bytes());
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        str::parse_key(text, out)
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        str::format_key(encoded)
    }
}

impl KeyEncoding for [u8] {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self);
    }
    /// `0x` then hex digits, or the text's own bytes.
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_bytes(text, out)
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        Some(format_key_bytes(encoded))
    }
}

impl KeyEncoding for Vec<u8> {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self);
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_bytes(text, out)
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        Some(format_key_bytes(encoded))
    }
}

impl<const N: usize> KeyEncoding for [u8; N] {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self);
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        let mut bytes = Key::new();
        parse_bytes(text, &mut bytes)?;
        if bytes.len() != N {
            return Err(ParseKeyError::invalid(text, &format!("{N}-byte string")));
        }
        out.extend_from_slice(&bytes);
        Ok(())
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        (encoded.len() == N).then(|| format_key_bytes(encoded))
    }
}

impl KeyEncoding for Ipv4Addr {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(&self.octets());
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<Ipv4Addr>(text, out, "IPv4 address")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        exact::<4>(encoded).map(|b| Ipv4Addr::from(b).to_string())
    }
}

impl KeyEncoding for Ipv6Addr {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(&self.octets());
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<Ipv6Addr>(text, out, "IPv6 address")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        exact::<16>(encoded).map(|b| Ipv6Addr::from(b).to_string())
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
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<IpAddr>(text, out, "IP address")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        decode_ip(encoded).map(|a| a.to_string())
    }
}

impl KeyEncoding for SocketAddr {
    /// Address then port, as `SocketAddr`'s `Ord` does.
    fn encode_key(&self, out: &mut Key) {
        self.ip().encode_key(out);
        self.port().encode_key(out);
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<SocketAddr>(text, out, "socket address")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        let (ip, port) = encoded.split_at_checked(encoded.len().checked_sub(2)?)?;
        let port = u16::from_be_bytes(exact(port)?);
        Some(SocketAddr::new(decode_ip(ip)?, port).to_string())
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

/// The first component of an encoded tuple, unescaped, and the bytes
/// after its terminator: the inverse of [`encode_component`].
fn split_component(encoded: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut raw = Vec::new();
    let mut i = 0;
    loop {
        match (encoded.get(i)?, encoded.get(i + 1)) {
            (0, Some(0)) => return Some((raw, &encoded[i + 2..])),
            (0, Some(1)) => {
                raw.push(0);
                i += 2;
            }
            (0, _) => return None,
            (b, _) => {
                raw.push(*b);
                i += 1;
            }
        }
    }
}

/// An encoded `IpAddr` (tag byte, then the address) decoded.
fn decode_ip(encoded: &[u8]) -> Option<IpAddr> {
    match encoded.split_first()? {
        (4, rest) => Some(IpAddr::from(exact::<4>(rest)?)),
        (6, rest) => Some(IpAddr::from(exact::<16>(rest)?)),
        _ => None,
    }
}

/// A parsed component of a tuple, escaped and terminated as
/// [`encode_component`] does.
fn parse_component<T: KeyEncoding + ?Sized>(
    text: &str,
    out: &mut Key,
) -> Result<(), ParseKeyError> {
    let mut raw = Key::new();
    T::parse_key(text, &mut raw)?;
    for &b in raw.iter() {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
    out.extend_from_slice(&[0, 0]);
    Ok(())
}

impl<A: KeyEncoding, B: KeyEncoding + ?Sized> KeyEncoding for (A, B) {
    /// Lexicographic by component, as the tuple's `Ord`: every component
    /// but the last is escaped and terminated, so variable-length parts
    /// (strings, bytes) compose too.
    fn encode_key(&self, out: &mut Key) {
        encode_component(&self.0, out);
        self.1.encode_key(out);
    }
    /// `"a,b"`: split at the first comma (the last component may
    /// contain commas).
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        let (a, b) = text
            .split_once(',')
            .ok_or_else(|| ParseKeyError::invalid(text, "pair `a,b`"))?;
        parse_component::<A>(a, out)?;
        B::parse_key(b, out)
    }
    /// `"a,b"`, as [`KeyEncoding::parse_key`] reads it.
    fn format_key(encoded: &[u8]) -> Option<String> {
        let (a, rest) = split_component(encoded)?;
        Some(format!("{},{}", A::format_key(&a)?, B::format_key(rest)?))
    }
}

impl<A: KeyEncoding, B: KeyEncoding, C: KeyEncoding + ?Sized> KeyEncoding for (A, B, C) {
    /// As for pairs: lexicographic by component.
    fn encode_key(&self, out: &mut Key) {
        encode_component(&self.0, out);
        encode_component(&self.1, out);
        self.2.encode_key(out);
    }
    /// `"a,b,c"`: split at the first two commas.
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        let mut parts = text.splitn(3, ',');
        let (Some(a), Some(b), Some(c)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParseKeyError::invalid(text, "triple `a,b,c`"));
        };
        parse_component::<A>(a, out)?;
        parse_component::<B>(b, out)?;
        C::parse_key(c, out)
    }
    /// `"a,b,c"`, as [`KeyEncoding::parse_key`] reads it.
    fn format_key(encoded: &[u8]) -> Option<String> {
        let (a, rest) = split_component(encoded)?;
        let (b, rest) = split_component(rest)?;
        Some(format!(
            "{},{},{}",
            A::format_key(&a)?,
            B::format_key(&b)?,
            C::format_key(rest)?
        ))
    }
}

impl KeyEncoding for ipnet::Ipv4Net {
    /// The network address (host bits cleared) then the prefix length:
    /// ordered by address, shorter prefix first on the same address.
    fn encode_key(&self, out: &mut Key) {
        self.network().encode_key(out);
        out.push(self.prefix_len());
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<ipnet::Ipv4Net>(text, out, "IPv4 prefix")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        (encoded.len() == 5)
            .then(|| decode_network(encoded))
            .flatten()
            .map(|n| n.to_string())
    }
    /// The networks within the given one.
    fn parse_prefix(text: &str, out: &mut Key) -> Result<Option<KeyFilter>, ParseKeyError> {
        let net: ipnet::Ipv4Net = parse_text(text, "IPv4 prefix")?;
        Ok(Some(networks_within(net.into(), None, out)))
    }
}

impl KeyEncoding for ipnet::Ipv6Net {
    /// The network address (host bits cleared) then the prefix length.
    fn encode_key(&self, out: &mut Key) {
        self.network().encode_key(out);
        out.push(self.prefix_len());
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<ipnet::Ipv6Net>(text, out, "IPv6 prefix")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        (encoded.len() == 17)
            .then(|| decode_network(encoded))
            .flatten()
            .map(|n| n.to_string())
    }
    /// The networks within the given one.
    fn parse_prefix(text: &str, out: &mut Key) -> Result<Option<KeyFilter>, ParseKeyError> {
        let net: ipnet::Ipv6Net = parse_text(text, "IPv6 prefix")?;
        Ok(Some(networks_within(net.into(), None, out)))
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
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        parse_via_from_str::<ipnet::IpNet>(text, out, "IP prefix")
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        let (tag, body) = encoded.split_first()?;
        let want = match tag {
            4 => 5,
            6 => 17,
            _ => return None,
        };
        (body.len() == want)
            .then(|| decode_network(body))
            .flatten()
            .map(|n| n.to_string())
    }
    /// The networks within the given one.
    fn parse_prefix(text: &str, out: &mut Key) -> Result<Option<KeyFilter>, ParseKeyError> {
        let net: ipnet::IpNet = parse_text(text, "IP prefix")?;
        let tag = if net.addr().is_ipv4() { 4 } else { 6 };
        Ok(Some(networks_within(net, Some(tag), out)))
    }
}

/// The search for networks within `net`: the family tag (if the encoding
/// has one) and the address bytes the prefix covers whole, then a filter
/// that decodes each key found and keeps those `net` contains.
fn networks_within(net: ipnet::IpNet, tag: Option<u8>, out: &mut Key) -> KeyFilter {
    let net = net.trunc();
    let octets: Vec<u8> = match net.network() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    if let Some(t) = tag {
        out.push(t);
    }
    out.extend_from_slice(&octets[..usize::from(net.prefix_len() / 8)]);
    Box::new(move |key: &[u8]| {
        let body = match tag {
            Some(t) => match key.split_first() {
                Some((first, rest)) if *first == t => rest,
                _ => return false,
            },
            None => key,
        };
        decode_network(body).is_some_and(|n| net.contains(&n))
    })
}

/// An encoded network (address bytes, then prefix length) decoded.
fn decode_network(key: &[u8]) -> Option<ipnet::IpNet> {
    match key {
        [a, b, c, d, len] => ipnet::IpNet::new(IpAddr::from([*a, *b, *c, *d]), *len).ok(),
        [addr @ .., len] if addr.len() == 16 => {
            let octets: [u8; 16] = addr.try_into().ok()?;
            ipnet::IpNet::new(IpAddr::from(octets), *len).ok()
        }
        _ => None,
    }
}

impl<T: KeyEncoding + ?Sized> KeyEncoding for &T {
    fn encode_key(&self, out: &mut Key) {
        (**self).encode_key(out);
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        T::parse_key(text, out)
    }
    fn parse_prefix(text: &str, out: &mut Key) -> Result<Option<KeyFilter>, ParseKeyError> {
        T::parse_prefix(text, out)
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        T::format_key(encoded)
    }
}

impl<T: KeyEncoding + ?Sized> KeyEncoding for Box<T> {
    fn encode_key(&self, out: &mut Key) {
        (**self).encode_key(out);
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        T::parse_key(text, out)
    }
    fn parse_prefix(text: &str, out: &mut Key) -> Result<Option<KeyFilter>, ParseKeyError> {
        T::parse_prefix(text, out)
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        T::format_key(encoded)
    }
}

impl<T: KeyEncoding + ?Sized> KeyEncoding for std::sync::Arc<T> {
    fn encode_key(&self, out: &mut Key) {
        (**self).encode_key(out);
    }
    fn parse_key(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
        T::parse_key(text, out)
    }
    fn parse_prefix(text: &str, out: &mut Key) -> Result<Option<KeyFilter>, ParseKeyError> {
        T::parse_prefix(text, out)
    }
    fn format_key(encoded: &[u8]) -> Option<String> {
        T::format_key(encoded)
    }
}

/// Implements [`KeyEncoding`] for types with a text form (`FromStr` and
/// `Display` that read each other back, such as a fieldless enum), so
/// that an index over them can be queried by text in inspection tools
/// (`?index=kind&key=error`), alone or inside a tuple (`"web,3"`).
///
/// The key is the `Display` text, so keys sort by their text (not by a
/// derived `Ord`); [`KeyEncoding::parse_key`] goes through `FromStr`, so
/// what does not parse is refused with the type's name, and
/// [`KeyEncoding::format_key`] prints the text back.
///
/// ```
/// use part::KeyEncoding;
/// #[derive(Debug, PartialEq)]
/// enum Kind { Web, Db }
/// impl std::fmt::Display for Kind {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str(match self { Kind::Web => "web", Kind::Db => "db" })
///     }
/// }
/// impl std::str::FromStr for Kind {
///     type Err = String;
///     fn from_str(s: &str) -> Result<Self, String> {
///         match s { "web" => Ok(Kind::Web), "db" => Ok(Kind::Db), _ => Err(s.into()) }
///     }
/// }
/// part::text_key!(Kind);
///
/// let mut k = part::Key::new();
/// Kind::parse_key("db", &mut k).unwrap();
/// assert_eq!(k, Kind::Db.to_key());
/// assert!(Kind::parse_key("cache", &mut part::Key::new()).is_err());
/// // In a tuple, as any key type.
/// let pair = <(Kind, u32)>::parse_key("web,3", &mut part::Key::new());
/// assert!(pair.is_ok());
/// assert_eq!(<(Kind, u32)>::format_key(&(Kind::Web, 3u32).to_key()).as_deref(), Some("web,3"));
/// ```
#[macro_export]
macro_rules! text_key {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::KeyEncoding for $t {
            fn encode_key(&self, out: &mut $crate::Key) {
                out.extend_from_slice(::std::string::ToString::to_string(self).as_bytes());
            }
            fn parse_key(
                text: &str,
                out: &mut $crate::Key,
            ) -> ::std::result::Result<(), $crate::ParseKeyError> {
                let value: $t = text
                    .trim()
                    .parse()
                    .map_err(|_| $crate::ParseKeyError::invalid(text, stringify!($t)))?;
                $crate::KeyEncoding::encode_key(&value, out);
                Ok(())
            }
            fn format_key(encoded: &[u8]) -> ::std::option::Option<::std::string::String> {
                let text = ::std::str::from_utf8(encoded).ok()?;
                text.parse::<$t>().ok()?;
                Some(text.to_string())
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An IP prefix given as text for a prefix search finds the networks
    /// within it: a byte prefix of the whole octets it covers, then a
    /// filter for the rest.
    #[test]
    fn ip_prefixes_search_the_networks_within() {
        let key = |n: &str| n.parse::<ipnet::IpNet>().unwrap().to_key();
        let mut out = Key::new();
        let keep = ipnet::IpNet::parse_prefix("10.0.0.0/8", &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(&out[..], [4, 10]);
        for inside in ["10.0.0.0/8", "10.1.0.0/16", "10.255.255.255/32"] {
            assert!(keep(&key(inside)), "{inside}");
        }
        for outside in ["10.0.0.0/7", "11.0.0.0/8", "0.0.0.0/0", "::/0"] {
            assert!(!keep(&key(outside)), "{outside}");
        }
        // Not byte-aligned: the byte prefix is shorter, the filter exact.
        let mut out = Key::new();
        let keep = ipnet::IpNet::parse_prefix("10.64.0.0/10", &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(&out[..], [4, 10]);
        assert!(keep(&key("10.96.0.0/12")));
        assert!(!keep(&key("10.128.0.0/10")));
        // Without the family tag, and IPv6.
        let mut out = Key::new();
        let keep = ipnet::Ipv6Net::parse_prefix("2001:db8::/32", &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(&out[..], [0x20, 0x01, 0x0d, 0xb8]);
        let v6 = |n: &str| n.parse::<ipnet::Ipv6Net>().unwrap().to_key();
        assert!(keep(&v6("2001:db8:1::/48")));
        assert!(!keep(&v6("2001:db9::/32")));
        assert!(!keep(b"garbage"));
        // Other key types: a plain byte prefix, and bad text an error.
        let mut out = Key::new();
        assert!(str::parse_prefix("web", &mut out).unwrap().is_none());
        assert!(ipnet::IpNet::parse_prefix("10.0.0.0/99", &mut Key::new()).is_err());
    }

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

    fn parsed<T: KeyEncoding + ?Sized>(text: &str) -> Result<Key, ParseKeyError> {
        let mut k = Key::new();
        T::parse_key(text, &mut k).map(|()| k)
    }

    #[test]
    fn text_parses_to_the_same_encoding() {
        assert_eq!(parsed::<u32>("42").unwrap(), 42u32.to_key());
        assert_eq!(parsed::<i64>("-7").unwrap(), (-7i64).to_key());
        assert_eq!(parsed::<bool>("true").unwrap(), true.to_key());
        assert_eq!(parsed::<str>("eth0").unwrap(), "eth0".to_key());
        assert_eq!(parsed::<String>("a,b").unwrap(), "a,b".to_string().to_key());
        assert_eq!(parsed::<[u8]>("0x00ff").unwrap()[..], [0, 255]);
        assert_eq!(parsed::<[u8; 2]>("ab").unwrap()[..], *b"ab");
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(parsed::<IpAddr>("10.1.2.3").unwrap(), ip.to_key());
        let net: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        assert_eq!(parsed::<ipnet::IpNet>("10.0.0.0/8").unwrap(), net.to_key());
        let pair = ("web".to_string(), 3u16);
        assert_eq!(parsed::<(String, u16)>("web,3").unwrap(), pair.to_key());
        let triple = (1u8, "x".to_string(), "y,z".to_string());
        assert_eq!(
            parsed::<(u8, String, String)>("1,x,y,z").unwrap(),
            triple.to_key()
        );
        assert_eq!(parsed::<Box<u8>>("9").unwrap(), 9u8.to_key());
    }

    #[test]
    fn bad_text_is_an_error_naming_what_was_expected() {
        let e = parsed::<u8>("300").unwrap_err();
        assert_eq!(e.to_string(), "\"300\" is not a valid u8");
        assert!(parsed::<IpAddr>("10.0.0.300").is_err());
        assert!(parsed::<ipnet::IpNet>("10.0.0.0/33").is_err());
        assert!(parsed::<(u8, u8)>("1").is_err());
        assert!(parsed::<(u8, u8, u8)>("1,2").is_err());
        assert!(parsed::<[u8]>("0x0").is_err());
        assert!(parsed::<[u8]>("0xzz").is_err());
        assert!(parsed::<[u8; 3]>("ab").is_err());
        struct Opaque;
        impl KeyEncoding for Opaque {
            fn encode_key(&self, _: &mut Key) {}
        }
        assert!(
            parsed::<Opaque>("x")
                .unwrap_err()
                .to_string()
                .contains("cannot be given as text")
        );
    }

    proptest! {
        #[test]
        fn integers_round_trip_through_text(a: i64, b: u32) {
            prop_assert_eq!(parsed::<i64>(&a.to_string()).unwrap(), a.to_key());
            prop_assert_eq!(parsed::<(u32, i64)>(&format!("{b},{a}")).unwrap(), (b, a).to_key());
        }

        /// What `format_key` prints, `parse_key` reads back to the same bytes.
        #[test]
        fn keys_print_as_the_text_that_parses_back(
            a: i16,
            b: u64,
            s in "[a-z0-9 ]{1,8}",
            ip: IpAddr,
            sock: SocketAddr,
            len4 in 0u8..=32,
            len6 in 0u8..=128,
            bytes: Vec<u8>,
        ) {
            fn round_trip<T: KeyEncoding + ?Sized>(key: &[u8]) -> Result<(), TestCaseError> {
                let text = T::format_key(key).ok_or_else(|| TestCaseError::fail("no text"))?;
                prop_assert_eq!(&parsed::<T>(&text).unwrap()[..], key, "{}", text);
                Ok(())
            }
            round_trip::<i16>(&a.to_key())?;
            round_trip::<u64>(&b.to_key())?;
            round_trip::<String>(&s.to_key())?;
            round_trip::<IpAddr>(&ip.to_key())?;
            round_trip::<SocketAddr>(&sock.to_key())?;
            round_trip::<Vec<u8>>(&bytes.to_key())?;
            let v4 = ipnet::IpNet::new(Ipv4Addr::from(b as u32).into(), len4).unwrap().trunc();
            let v6 = ipnet::IpNet::new(Ipv6Addr::from(u128::from(b) << 64).into(), len6).unwrap().trunc();
            round_trip::<ipnet::IpNet>(&v4.to_key())?;
            round_trip::<ipnet::IpNet>(&v6.to_key())?;
            round_trip::<(String, u64)>(&(s.clone(), b).to_key())?;
            round_trip::<(u8, String, IpAddr)>(&(3u8, s.clone(), ip).to_key())?;
        }
    }

    #[test]
    fn keys_print_as_people_write_them() {
        let net: ipnet::IpNet = "10.0.0.0/24".parse().unwrap();
        assert_eq!(
            ipnet::IpNet::format_key(&net.to_key()).unwrap(),
            "10.0.0.0/24"
        );
        assert_eq!(u64::format_key(&2u64.to_key()).unwrap(), "2");
        assert_eq!(i32::format_key(&(-5i32).to_key()).unwrap(), "-5");
        assert_eq!(bool::format_key(&true.to_key()).unwrap(), "true");
        assert_eq!(
            <(String, u16)>::format_key(&("a\0b".to_string(), 7u16).to_key()).unwrap(),
            "a\0b,7"
        );
        assert_eq!(<[u8]>::format_key(&[0, 255]).unwrap(), "0x00ff");
        // Bytes that are not an encoding of the type: no text, never a panic.
        assert_eq!(u64::format_key(&[1, 2, 3]), None);
        assert_eq!(ipnet::IpNet::format_key(&[4, 10, 0, 0]), None);
        assert_eq!(ipnet::IpNet::format_key(&[4, 10, 0, 0, 0, 99]), None);
        assert_eq!(<(u8, u8)>::format_key(&[1, 0]), None);
        assert_eq!(str::format_key(&[0xff]), None);
    }

    #[test]
    fn negative_before_positive() {
        assert!((-1i32).to_key() < 0i32.to_key());
        assert!(i64::MIN.to_key() < i64::MAX.to_key());
        assert!(false.to_key() < true.to_key());
    }
}
