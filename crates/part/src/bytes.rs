//! The bytes a tree node keeps: its leaf's whole key, or its compressed
//! path alone.
//!
//! A node's path is its parent's path, the edge byte and its compressed
//! prefix; a node's leaf holds the key equal to that path. So when a node
//! has a leaf, the prefix is the key's tail, and one buffer holds both:
//! the key, with the prefix as its last `plen` bytes. A node without a
//! leaf keeps only the prefix. Nodes used to carry the two side by side
//! (a 24-byte prefix and a 32-byte key copy); this is 24 bytes, with keys
//! up to [`INLINE`] bytes stored without an allocation.

/// Bytes stored inline, without an allocation: enough for a `u64` key
/// followed by a `u64` revision and a few more.
pub(crate) const INLINE: usize = 21;

/// Longest prefix a heap buffer records in its 32-bit field; longer ones
/// (a key of 4 GiB) take the `Huge` form. Lowered in test builds so that
/// the tests reach that form.
#[cfg(not(test))]
const HEAP_PLEN_MAX: usize = u32::MAX as usize;
#[cfg(test)]
const HEAP_PLEN_MAX: usize = 40;

/// Equality of two short byte strings (node prefixes, key tails) without
/// a `memcmp` call or a loop per byte: strings of up to 16 bytes are
/// compared as two overlapping words (every byte is in one of them), longer
/// ones by 8-byte chunks. Prefixes are mostly a few bytes long, and a
/// `memcmp` call, or a byte loop whose length the branch predictor must
/// guess, costs more than the compare itself on every level of a descent.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word4 = |s: &[u8], i: usize| u32::from_ne_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let word8 = |s: &[u8], i: usize| {
        u64::from_ne_bytes([
            s[i],
            s[i + 1],
            s[i + 2],
            s[i + 3],
            s[i + 4],
            s[i + 5],
            s[i + 6],
            s[i + 7],
        ])
    };
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

/// A byte string whose last `plen` bytes are the node's prefix.
#[derive(Clone)]
pub(crate) enum NodeBytes {
    Inline {
        len: u8,
        plen: u8,
        bytes: [u8; INLINE],
    },
    Heap {
        plen: u32,
        bytes: Box<[u8]>,
    },
    Huge(Box<(usize, Box<[u8]>)>),
}

impl NodeBytes {
    /// No bytes.
    pub const fn empty() -> Self {
        NodeBytes::Inline {
            len: 0,
            plen: 0,
            bytes: [0; INLINE],
        }
    }

    /// `all`, whose last `plen` bytes are the prefix (`plen` is capped at
    /// the length).
    pub fn new(all: &[u8], plen: usize) -> Self {
        let plen = plen.min(all.len());
        if all.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..all.len()].copy_from_slice(all);
            // Both fit in a byte: at most INLINE.
            NodeBytes::Inline {
                len: all.len() as u8,
                plen: plen as u8,
                bytes,
            }
        } else {
            Self::heap(all.into(), plen)
        }
    }

    /// Only a prefix.
    pub fn prefix_only(prefix: &[u8]) -> Self {
        Self::new(prefix, prefix.len())
    }

    fn heap(bytes: Box<[u8]>, plen: usize) -> Self {
        match u32::try_from(plen) {
            Ok(p) if plen <= HEAP_PLEN_MAX => NodeBytes::Heap { plen: p, bytes },
            _ => NodeBytes::Huge(Box::new((plen, bytes))),
        }
    }

    /// Every byte: the whole key when the node has a leaf.
    #[inline]
    pub fn all(&self) -> &[u8] {
        match self {
            NodeBytes::Inline { len, bytes, .. } => &bytes[..*len as usize],
            NodeBytes::Heap { bytes, .. } => bytes,
            NodeBytes::Huge(h) => &h.1,
        }
    }

    /// The prefix length.
    #[inline]
    pub fn plen(&self) -> usize {
        match self {
            NodeBytes::Inline { plen, .. } => *plen as usize,
            NodeBytes::Heap { plen, .. } => *plen as usize,
            NodeBytes::Huge(h) => h.0,
        }
    }

    /// The last `plen` bytes: the node's compressed prefix.
    #[inline]
    pub fn prefix(&self) -> &[u8] {
        let all = self.all();
        let plen = self.plen().min(all.len());
        &all[all.len() - plen..]
    }

    /// Makes the prefix the last `plen` bytes (capped at the length),
    /// keeping the bytes.
    pub fn set_plen(&mut self, new: usize) {
        let new = new.min(self.all().len());
        match self {
            NodeBytes::Inline { plen, .. } => *plen = new as u8,
            NodeBytes::Heap { plen, bytes } => match u32::try_from(new) {
                Ok(p) if new <= HEAP_PLEN_MAX => *plen = p,
                _ => {
                    let bytes = std::mem::take(bytes);
                    *self = NodeBytes::Huge(Box::new((new, bytes)));
                }
            },
            NodeBytes::Huge(h) => h.0 = new,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(b: &NodeBytes, all: &[u8], prefix: &[u8]) {
        assert_eq!(b.all(), all);
        assert_eq!(b.prefix(), prefix);
        assert_eq!(b.plen(), prefix.len());
    }

    #[test]
    fn is_three_words() {
        assert_eq!(std::mem::size_of::<NodeBytes>(), 24);
    }

    #[test]
    fn every_form_keeps_bytes_and_prefix() {
        let short = b"0123456789";
        let long: Vec<u8> = (0..30).collect();
        let huge: Vec<u8> = (0..60).collect();
        for all in [&short[..], &long[..], &huge[..], &[][..]] {
            for plen in [0, 1, all.len() / 2, all.len()] {
                let plen = plen.min(all.len());
                let mut b = NodeBytes::new(all, plen);
                check(&b, all, &all[all.len() - plen..]);
                check(&b.clone(), all, &all[all.len() - plen..]);
                // Every form can move its prefix boundary both ways.
                for p in [all.len(), 0, plen] {
                    b.set_plen(p);
                    check(&b, all, &all[all.len() - p..]);
                }
            }
        }
        // The forms are the expected ones.
        assert!(matches!(NodeBytes::new(short, 3), NodeBytes::Inline { .. }));
        assert!(matches!(NodeBytes::new(&long, 3), NodeBytes::Heap { .. }));
        assert!(matches!(NodeBytes::new(&huge, 50), NodeBytes::Huge(_)));
        let mut b = NodeBytes::new(&huge, 3);
        assert!(matches!(b, NodeBytes::Heap { .. }));
        b.set_plen(59);
        assert!(matches!(b, NodeBytes::Huge(_)));
        check(&b, &huge, &huge[1..]);
    }

    #[test]
    fn plen_is_capped_at_the_length() {
        let mut b = NodeBytes::new(b"abc", 9);
        check(&b, b"abc", b"abc");
        b.set_plen(100);
        check(&b, b"abc", b"abc");
        check(&NodeBytes::prefix_only(b"xy"), b"xy", b"xy");
        check(&NodeBytes::empty(), b"", b"");
    }

    #[test]
    fn short_eq_matches_slice_equality_at_every_length() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(7)).collect();
            assert!(short_eq(&a, &a.clone()), "len {n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x80;
                assert!(!short_eq(&a, &b), "len {n}, byte {at} differs");
            }
            assert!(!short_eq(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }
}
