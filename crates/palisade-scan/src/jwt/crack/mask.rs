//! Masks in hashcat's notation: `?l` lower-case letters, `?u` upper-case, `?d` digits, `?s`
//! printable symbols and space, `?a` all of those, `?h` lower-case hex, `??` a question mark;
//! any other character stands for itself. `secret?d?d` is `secret00` to `secret99`.

use crate::ScanError;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const SYMBOLS: &[u8] = b" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const HEX: &[u8] = b"0123456789abcdef";

/// A mask, as one set of characters per position.
#[derive(Debug, Clone)]
pub struct Mask {
    positions: Vec<Vec<u8>>,
}

impl Mask {
    pub fn parse(text: &str) -> Result<Self, ScanError> {
        let bad = |m: String| ScanError::Usage(format!("mask {text:?}: {m}"));
        let mut positions = Vec::new();
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            if b != b'?' {
                positions.push(vec![b]);
                continue;
            }
            let set: Vec<u8> = match bytes.next() {
                Some(b'l') => LOWER.to_vec(),
                Some(b'u') => UPPER.to_vec(),
                Some(b'd') => DIGITS.to_vec(),
                Some(b's') => SYMBOLS.to_vec(),
                Some(b'h') => HEX.to_vec(),
                Some(b'a') => [LOWER, UPPER, DIGITS, SYMBOLS].concat(),
                Some(b'?') => vec![b'?'],
                Some(other) => return Err(bad(format!("unknown class ?{}", other as char))),
                None => return Err(bad("ends with a lone ?".into())),
            };
            positions.push(set);
        }
        if positions.is_empty() {
            return Err(bad("is empty".into()));
        }
        let mask = Self { positions };
        if mask.count().is_none() {
            return Err(bad("has more than 2^63 candidates".into()));
        }
        Ok(mask)
    }

    /// How many candidates the mask stands for.
    pub fn count(&self) -> Option<u64> {
        self.positions
            .iter()
            .try_fold(1u64, |n, set| n.checked_mul(set.len() as u64))
            .filter(|&n| n <= i64::MAX as u64)
    }

    /// The length in bytes of every candidate.
    pub fn width(&self) -> usize {
        self.positions.len()
    }

    /// Writes candidates `start..end` into `out`, one after another, each `width()` bytes, by
    /// decoding `start` once and then counting like an odometer (last position fastest).
    pub fn fill(&self, start: u64, end: u64, out: &mut Vec<u8>) {
        let n = self.positions.len();
        let mut digits = vec![0usize; n];
        let mut rest = start;
        for (d, set) in digits.iter_mut().zip(&self.positions).rev() {
            *d = (rest % set.len() as u64) as usize;
            rest /= set.len() as u64;
        }
        let mut word: Vec<u8> = digits
            .iter()
            .zip(&self.positions)
            .map(|(&d, set)| set[d])
            .collect();
        out.clear();
        for _ in start..end {
            out.extend_from_slice(&word);
            for i in (0..n).rev() {
                digits[i] += 1;
                if digits[i] < self.positions[i].len() {
                    word[i] = self.positions[i][digits[i]];
                    break;
                }
                digits[i] = 0;
                word[i] = self.positions[i][0];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_in_order_from_any_starting_point() {
        let mask = Mask::parse("a?d?l").unwrap();
        assert_eq!(mask.count(), Some(260));
        let mut all = Vec::new();
        mask.fill(0, 260, &mut all);
        let words: Vec<&[u8]> = all.chunks(3).collect();
        assert_eq!(words[0], b"a0a");
        assert_eq!(words[27], b"a1b");
        assert_eq!(words[259], b"a9z");
        let mut part = Vec::new();
        mask.fill(25, 28, &mut part);
        assert_eq!(part, b"a0za1aa1b");
    }

    #[test]
    fn refuses_what_is_not_a_mask() {
        for bad in ["", "x?", "?q", &"?a".repeat(12)] {
            assert!(
                matches!(Mask::parse(bad), Err(ScanError::Usage(_))),
                "{bad}"
            );
        }
        assert_eq!(Mask::parse("??").unwrap().count(), Some(1));
    }
}
