//! A dependency-free stand-in for the parts of the `rand` 0.4 API that HumanEvalPack programs use.
//!
//! Debian ships only rand 0.8, whose `gen_range(lo..hi)` replaced 0.4's `gen_range(lo, hi)`, so
//! Rust/32 and Rust/50 would not compile against it. This crate keeps the 0.4 signatures:
//! `Rng` (`gen`, `gen_range(low, high)`, `gen_weighted_bool`, `choose`, `shuffle`, `fill_bytes`,
//! `next_u32`/`next_u64`/`next_f32`/`next_f64`), `thread_rng()`, `random()`, `StdRng`,
//! `SeedableRng`, `Rand`.
//!
//! Seeding: when the environment variable `OCTOJAX_RAND_SEED` holds an integer, every
//! `thread_rng()` / `random()` stream is derived from it deterministically (the evaluator sets it
//! by default so that Rust/32's unseeded test is reproducible); otherwise seeds come from
//! /dev/urandom like rand's own.
//! The generator is xoshiro256** seeded through splitmix64 (not cryptographic, as rand 0.4's
//! `thread_rng` was not meant to be used for keys either).

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of random bits plus the 0.4 convenience methods.
pub trait Rng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64;
    fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    fn gen<T: Rand>(&mut self) -> T
    where
        Self: Sized,
    {
        T::rand(self)
    }
    /// A value in `[low, high)`; panics when `low >= high`, as rand 0.4 did.
    fn gen_range<T: PartialOrd + SampleRange>(&mut self, low: T, high: T) -> T
    where
        Self: Sized,
    {
        assert!(low < high, "Rng.gen_range called with low >= high");
        T::sample_range(self, low, high)
    }
    fn gen_weighted_bool(&mut self, n: u32) -> bool
    where
        Self: Sized,
    {
        n <= 1 || self.gen_range(0, n) == 0
    }
    fn choose<'a, T>(&mut self, values: &'a [T]) -> Option<&'a T>
    where
        Self: Sized,
    {
        if values.is_empty() {
            None
        } else {
            Some(&values[self.gen_range(0, values.len())])
        }
    }
    fn shuffle<T>(&mut self, values: &mut [T])
    where
        Self: Sized,
    {
        let mut i = values.len();
        while i >= 2 {
            i -= 1;
            values.swap(i, self.gen_range(0, i + 1));
        }
    }
}

/// Types that can be drawn uniformly from an `Rng` (`rng.gen::<T>()`, `random::<T>()`).
pub trait Rand: Sized {
    fn rand<R: Rng>(rng: &mut R) -> Self;
}

/// Types `gen_range` can sample.
pub trait SampleRange: Sized {
    fn sample_range<R: Rng>(rng: &mut R, low: Self, high: Self) -> Self;
}

macro_rules! int_impls {
    ($($ty:ty => $unsigned:ty),*) => {$(
        impl Rand for $ty {
            fn rand<R: Rng>(rng: &mut R) -> Self {
                rng.next_u64() as $ty
            }
        }
        impl SampleRange for $ty {
            fn sample_range<R: Rng>(rng: &mut R, low: Self, high: Self) -> Self {
                let span = high.wrapping_sub(low) as $unsigned as u128;
                // Rejection sampling keeps the draw uniform.
                let zone = (u64::MAX as u128 + 1) - ((u64::MAX as u128 + 1) % span);
                loop {
                    let v = rng.next_u64() as u128;
                    if v < zone {
                        return low.wrapping_add((v % span) as $ty);
                    }
                }
            }
        }
    )*};
}
int_impls!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, isize => usize,
           u8 => u8, u16 => u16, u32 => u32, u64 => u64, usize => usize);

impl Rand for bool {
    fn rand<R: Rng>(rng: &mut R) -> Self {
        rng.next_u32() & 1 == 1
    }
}
impl Rand for f64 {
    fn rand<R: Rng>(rng: &mut R) -> Self {
        rng.next_f64()
    }
}
impl Rand for f32 {
    fn rand<R: Rng>(rng: &mut R) -> Self {
        rng.next_f32()
    }
}
impl Rand for char {
    fn rand<R: Rng>(rng: &mut R) -> Self {
        loop {
            if let Some(c) = std::char::from_u32(rng.next_u32() & 0x10_FFFF) {
                return c;
            }
        }
    }
}
impl SampleRange for f64 {
    fn sample_range<R: Rng>(rng: &mut R, low: Self, high: Self) -> Self {
        low + (high - low) * rng.next_f64()
    }
}
impl SampleRange for f32 {
    fn sample_range<R: Rng>(rng: &mut R, low: Self, high: Self) -> Self {
        low + (high - low) * rng.next_f32()
    }
}
impl<A: Rand, B: Rand> Rand for (A, B) {
    fn rand<R: Rng>(rng: &mut R) -> Self {
        (A::rand(rng), B::rand(rng))
    }
}

/// Generators that can be built from a seed (`StdRng::from_seed(&[1, 2, 3][..])`).
pub trait SeedableRng<Seed>: Rng {
    fn reseed(&mut self, seed: Seed);
    fn from_seed(seed: Seed) -> Self;
}

/// xoshiro256** state.
#[derive(Clone, Debug)]
pub struct StdRng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl StdRng {
    /// A generator seeded from the OS (rand 0.4's `StdRng::new()` returned `io::Result`).
    pub fn new() -> std::io::Result<StdRng> {
        Ok(StdRng::from_u64(os_seed()))
    }
    fn from_u64(seed: u64) -> StdRng {
        let mut sm = seed;
        StdRng {
            s: [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)],
        }
    }
}

impl Rng for StdRng {
    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }
}

impl<'a> SeedableRng<&'a [usize]> for StdRng {
    fn reseed(&mut self, seed: &'a [usize]) {
        *self = Self::from_seed(seed);
    }
    fn from_seed(seed: &'a [usize]) -> StdRng {
        let mut acc = 0x5EED_u64;
        for &v in seed {
            acc = splitmix64(&mut (acc ^ v as u64));
        }
        StdRng::from_u64(acc)
    }
}

fn os_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(&mut bytes).is_ok() {
            return u64::from_le_bytes(bytes);
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

static STREAMS: AtomicU64 = AtomicU64::new(0);

fn fresh_seed() -> u64 {
    match std::env::var("OCTOJAX_RAND_SEED").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        // Each new thread-local generator gets the next stream of the fixed seed.
        Some(seed) => seed ^ STREAMS.fetch_add(1, Ordering::SeqCst).wrapping_mul(0xA24B_AED4_963E_E407),
        None => os_seed(),
    }
}

thread_local! {
    static THREAD_RNG: Rc<RefCell<StdRng>> = Rc::new(RefCell::new(StdRng::from_u64(fresh_seed())));
}

/// Handle to the calling thread's generator (rand 0.4's `ThreadRng`).
#[derive(Clone, Debug)]
pub struct ThreadRng {
    rng: Rc<RefCell<StdRng>>,
}

impl Rng for ThreadRng {
    fn next_u64(&mut self) -> u64 {
        self.rng.borrow_mut().next_u64()
    }
}

/// The calling thread's lazily seeded generator.
pub fn thread_rng() -> ThreadRng {
    ThreadRng { rng: THREAD_RNG.with(|r| r.clone()) }
}

/// A random value from the thread's generator.
pub fn random<T: Rand>() -> T {
    thread_rng().gen()
}

pub mod prelude {
    pub use super::{random, thread_rng, Rng, SeedableRng, StdRng, ThreadRng};
}
