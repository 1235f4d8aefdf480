//! URPS, the uniform random peer sampler (spec notes §9.4; the knowledge-free strategy of
//! Anceaume, Busnel and Sericola, DSN 2013): it reads the stream of node ids a node receives
//! in gossip exchanges and outputs ids close to uniformly random among those seen, however
//! biased the stream. An attacker who floods the stream with its own ids gets them admitted
//! with low probability.
//!
//! State: a count-min sketch `F[s][k]` ([`CountMin`], `s = ⌈ln(1/δ)⌉` rows with independently
//! seeded hashes, `k = ⌈e/ε⌉` columns) and a memory Γ of at most `c` ids with their metadata.
//! For every id `j` read ([`Urps::feed`]):
//!
//! 1. `F[v][h_v(j)] += 1` for each row `v`;
//! 2. `f̂_j = min_v F[v][h_v(j)]`, the estimated frequency of `j`;
//! 3. `m` = the minimum over all cells of `F` that have been hit (see below);
//! 4. if `|Γ| < c`, insert `j`; otherwise, with probability `m / f̂_j`, replace a uniformly
//!    random element of Γ by `j`;
//! 5. output a uniformly random element of Γ, with its metadata.
//!
//! Γ is a set: an id already in it is not inserted again (its metadata is replaced by the one
//! fed, so a caller that holds a newer descriptor than the one received should feed that).
//!
//! **\[proposal\]** Step 3 of the reference takes the minimum over *all* cells. While some cell
//! has never been hit that minimum is 0, and a full Γ then admits nothing: the first `c` ids
//! read stay for good. With the defaults' 28 columns a row is covered only after about 110
//! distinct ids (coupon collector), so in a network of up to a few hundred nodes Γ would
//! freeze on whatever came first — an attacker who floods early would own it. Here `m` is the
//! minimum over the cells that have been hit. That changes nothing once every cell is hit, and
//! keeps the property the rule is for: every id's admission rate, `P(read j) × m / f̂_j`, is
//! the same `m`-proportional constant (since `f̂_j` is itself a hit cell, `m ≤ f̂_j`), so Γ
//! tends to a uniform sample of the ids seen however the stream is biased.
//!
//! Memory: `s × k` counters of 8 bytes (5 × 28 × 8 = 1,120 bytes with the defaults) plus `c`
//! entries of an id and a `T`. [`MAX_SKETCH_ROWS`] and [`MAX_SKETCH_COLUMNS`] bound the sketch
//! whatever the parameters (64 × 65,536 × 8 bytes = 32 MiB at worst).

use crate::identity::NodeIdentity;
use crate::rng::SplitMix64;

/// Most rows a sketch is given, whatever δ (δ = 10⁻²⁷ already needs only 63).
pub const MAX_SKETCH_ROWS: usize = 64;
/// Most columns a sketch is given, whatever ε (ε ≈ 4·10⁻⁵).
pub const MAX_SKETCH_COLUMNS: usize = 65_536;

/// The sampler's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UrpsParams {
    /// `c`, the size of the memory Γ. Default 30.
    pub memory: usize,
    /// The sketch's accuracy ε: estimates exceed the true count by at most ε × the stream
    /// length, with probability 1 − δ. Default 0.1 (28 columns).
    pub epsilon: f64,
    /// The sketch's failure probability δ. Default 0.01 (5 rows).
    pub delta: f64,
}

impl Default for UrpsParams {
    fn default() -> UrpsParams {
        UrpsParams {
            memory: 30,
            epsilon: 0.1,
            delta: 0.01,
        }
    }
}

impl UrpsParams {
    /// `s = ⌈ln(1/δ)⌉`, between 1 and [`MAX_SKETCH_ROWS`].
    pub fn rows(&self) -> usize {
        let s = (1.0 / self.delta).ln().ceil();
        if s.is_nan() {
            return 1;
        }
        (s.max(1.0) as usize).min(MAX_SKETCH_ROWS)
    }

    /// `k = ⌈e/ε⌉`, between 1 and [`MAX_SKETCH_COLUMNS`].
    pub fn columns(&self) -> usize {
        let k = (std::f64::consts::E / self.epsilon).ceil();
        if k.is_nan() {
            return MAX_SKETCH_COLUMNS;
        }
        (k.max(1.0) as usize).min(MAX_SKETCH_COLUMNS)
    }

    /// Checks the parameters make sense (for configuration): `memory` ≥ 1, ε in (0, 1], δ in
    /// (0, 1).
    pub fn check(&self) -> Result<(), String> {
        if self.memory == 0 {
            return Err("URPS memory must be at least 1".into());
        }
        if !(self.epsilon > 0.0 && self.epsilon <= 1.0) {
            return Err(format!(
                "URPS epsilon must be in (0, 1], not {}",
                self.epsilon
            ));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(format!("URPS delta must be in (0, 1), not {}", self.delta));
        }
        Ok(())
    }
}

/// A count-min sketch of node ids: `rows × columns` counters, row `v` hashing an id with its
/// own seed. Estimates never fall below the true count.
#[derive(Clone, Debug)]
pub struct CountMin {
    columns: usize,
    seeds: Vec<[u8; 8]>,
    cells: Vec<u64>,
}

impl CountMin {
    /// An empty sketch (at least one row and one column; at most [`MAX_SKETCH_ROWS`] ×
    /// [`MAX_SKETCH_COLUMNS`]) whose row hashes are derived from `seed`.
    pub fn new(rows: usize, columns: usize, seed: u64) -> CountMin {
        let rows = rows.clamp(1, MAX_SKETCH_ROWS);
        let columns = columns.clamp(1, MAX_SKETCH_COLUMNS);
        let seeds = (0..rows as u64)
            .map(|v| SplitMix64::derive(seed, v).next_u64().to_le_bytes())
            .collect();
        CountMin {
            columns,
            seeds,
            cells: vec![0; rows * columns],
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.seeds.len()
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// The cell of `id` in row `v`: SHA-256(row seed ‖ id), first 8 bytes little-endian,
    /// modulo the columns. Keyed by a seed an attacker does not know, so it cannot choose ids
    /// that collide with an honest one.
    fn cell(&self, v: usize, id: &NodeIdentity) -> usize {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.seeds[v]);
        ctx.update(id.as_bytes());
        let digest = ctx.finish();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        v * self.columns + (u64::from_le_bytes(first) % self.columns as u64) as usize
    }

    /// Counts one occurrence of `id` and returns its new estimate.
    pub fn add(&mut self, id: &NodeIdentity) -> u64 {
        let mut estimate = u64::MAX;
        for v in 0..self.rows() {
            let c = self.cell(v, id);
            self.cells[c] = self.cells[c].saturating_add(1);
            estimate = estimate.min(self.cells[c]);
        }
        estimate
    }

    /// The estimated count of `id`: the minimum over the rows of its cells (never below the
    /// true count).
    pub fn estimate(&self, id: &NodeIdentity) -> u64 {
        (0..self.rows())
            .map(|v| self.cells[self.cell(v, id)])
            .min()
            .unwrap_or(0)
    }

    /// The smallest counter of the whole sketch (0 while a cell has never been hit).
    pub fn min_cell(&self) -> u64 {
        self.cells.iter().copied().min().unwrap_or(0)
    }

    /// The smallest counter among the cells that have been hit (0 for an empty sketch): the
    /// sampler's `m`.
    pub fn min_hit_cell(&self) -> u64 {
        self.cells
            .iter()
            .copied()
            .filter(|&c| c > 0)
            .min()
            .unwrap_or(0)
    }
}

/// The sampler: a [`CountMin`] sketch and the memory Γ of at most `c` ids with metadata `T`
/// (a node descriptor, say).
#[derive(Clone, Debug)]
pub struct Urps<T: Clone> {
    memory_len: usize,
    sketch: CountMin,
    gamma: Vec<(NodeIdentity, T)>,
}

impl<T: Clone> Urps<T> {
    /// An empty sampler whose sketch hashes are seeded from `seed` (a real node draws it from
    /// the operating system, so an attacker cannot aim at the sketch's cells).
    pub fn new(params: UrpsParams, seed: u64) -> Urps<T> {
        let memory_len = params.memory.max(1);
        Urps {
            memory_len,
            sketch: CountMin::new(params.rows(), params.columns(), seed),
            gamma: Vec::with_capacity(memory_len),
        }
    }

    /// Reads one id of the stream and outputs the next sample (steps 1 to 5 of the module doc).
    pub fn feed(&mut self, id: NodeIdentity, meta: T, rng: &mut SplitMix64) -> (NodeIdentity, T) {
        let estimate = self.sketch.add(&id).max(1);
        let m = self.sketch.min_hit_cell();
        if let Some(held) = self.gamma.iter_mut().find(|(j, _)| *j == id) {
            held.1 = meta;
        } else if self.gamma.len() < self.memory_len {
            self.gamma.push((id, meta));
        } else if rng.next_f64() < m as f64 / estimate as f64 {
            let evict = rng.below(self.gamma.len() as u64) as usize;
            self.gamma[evict] = (id, meta);
        }
        // Γ holds at least the id just read or the one it was full with.
        let out = rng.below(self.gamma.len() as u64) as usize;
        self.gamma[out].clone()
    }

    /// The estimated number of times `id` was fed.
    pub fn estimate(&self, id: &NodeIdentity) -> u64 {
        self.sketch.estimate(id)
    }

    /// The ids in Γ with their metadata.
    pub fn memory(&self) -> impl Iterator<Item = &(NodeIdentity, T)> {
        self.gamma.iter()
    }

    /// The metadata held for `id`, if it is in Γ.
    pub fn get(&self, id: &NodeIdentity) -> Option<&T> {
        self.gamma.iter().find(|(j, _)| j == id).map(|(_, t)| t)
    }

    /// Removes `id` from Γ (its descriptor expired, say); the sketch keeps its counts.
    pub fn forget(&mut self, id: &NodeIdentity) {
        self.gamma.retain(|(j, _)| j != id);
    }

    /// Number of ids in Γ.
    pub fn len(&self) -> usize {
        self.gamma.len()
    }

    /// Whether Γ is empty (nothing fed yet).
    pub fn is_empty(&self) -> bool {
        self.gamma.is_empty()
    }

    /// The sketch (for probes and tests).
    pub fn sketch(&self) -> &CountMin {
        &self.sketch
    }
}
