//! Deterministic randomness: a sequential splitmix64 generator for building the tenant's structure,
//! and a stateless keyed hash for per-cell values (cost of resource r on day d), so any cell can be
//! computed on demand, in any order, without storing rows.
//!
//! Only integer operations and basic IEEE arithmetic are used, so the same seed gives the same data on
//! every platform.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sequential splitmix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[cfg(test)]
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator derived from this seed and a key, independent of how many values were drawn.
    pub fn derive(seed: u64, key: &[u64]) -> Self {
        Rng(hash(seed, key))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        to_unit(self.next_u64())
    }

    /// Uniform in [lo, hi).
    pub fn range_f(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // Callers only pass non-empty constant tables.
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn bytes16(&mut self) -> [u8; 16] {
        let a = self.next_u64().to_le_bytes();
        let b = self.next_u64().to_le_bytes();
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a);
        out[8..].copy_from_slice(&b);
        out
    }

    /// A random (version 4 shaped) UUID, lowercase, hyphenated.
    pub fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.bytes16())
            .into_uuid()
            .hyphenated()
            .to_string()
    }
}

/// Stateless keyed hash.
pub fn hash(seed: u64, key: &[u64]) -> u64 {
    let mut h = mix(seed ^ 0x5EED_5EED_5EED_5EED);
    for (i, k) in key.iter().enumerate() {
        h = mix(h ^ k.wrapping_mul(GOLDEN).wrapping_add(i as u64 + 1));
    }
    h
}

/// Uniform in [0, 1) from a hash.
pub fn unit(seed: u64, key: &[u64]) -> f64 {
    to_unit(hash(seed, key))
}

fn to_unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a, for fingerprints of request bodies carried in paging tokens.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_repeat_for_a_seed() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(hash(1, &[2, 3]), hash(1, &[3, 2]));
        let u = unit(3, &[4]);
        assert!((0.0..1.0).contains(&u));
    }
}
