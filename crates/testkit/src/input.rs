//! Decoding fuzzer bytes into program parts. Running out of input yields
//! zeros, so every byte string decodes to a whole program.

pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A value below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.byte())
    }

    /// Up to `max` bytes, each drawn from `alphabet`: small alphabets make
    /// shared prefixes, and 0x00/0xff stress the encodings.
    pub fn key(&mut self, alphabet: &[u8], max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }

    /// Raw bytes with a length prefix.
    pub fn raw(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.byte()).collect()
    }
}
