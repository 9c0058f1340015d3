//! Synthetic spend-like series with labelled anomalies, generated from a seed (no `rand` crate: a
//! SplitMix64 generator is enough and keeps the series identical on every machine).
#![allow(dead_code)]

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn index(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
}

/// Shape of the normal behaviour of a synthetic series.
#[derive(Debug, Clone)]
pub struct Shape {
    pub level: f64,
    /// Multiplicative factor on Saturday and Sunday (1 = no weekly pattern).
    pub weekend: f64,
    /// Relative growth per day.
    pub growth_per_day: f64,
    /// Multiplicative noise (log-normal sigma).
    pub noise: f64,
    /// Charge on the 1st of each month, relative to the level (0 = none).
    pub month_start: f64,
}

/// Day-of-week of index `i` when index 0 is a Monday: 5 and 6 are the weekend.
pub fn is_weekend(i: usize) -> bool {
    i % 7 >= 5
}

/// Normal values of a series starting on Monday 2024-01-01 (so day-of-month is easy to derive).
pub fn normal_series(shape: &Shape, days: usize, rng: &mut Rng) -> Vec<f64> {
    let start = time::macros::date!(2024 - 01 - 01);
    (0..days)
        .map(|i| {
            let mut v = shape.level * (1.0 + shape.growth_per_day).powi(i as i32);
            if is_weekend(i) {
                v *= shape.weekend;
            }
            v *= (shape.noise * rng.normal()).exp();
            let date = start + time::Duration::days(i as i64);
            if date.day() == 1 {
                v += shape.month_start * shape.level;
            }
            v
        })
        .collect()
}

/// A labelled synthetic series.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub values: Vec<Option<f64>>,
    /// Inclusive index windows of the injected anomalies.
    pub windows: Vec<(usize, usize)>,
}

/// A random spend-like series with injected spikes, drops, level shifts and slow drifts.
pub fn random_labelled(rng: &mut Rng) -> Labelled {
    let days = 60 + rng.index(300);
    let shape = Shape {
        level: 10f64.powf(rng.range(0.0, 5.0)),
        weekend: if rng.chance(0.5) {
            rng.range(0.2, 0.8)
        } else {
            1.0
        },
        growth_per_day: if rng.chance(0.3) {
            rng.range(0.0, 0.001)
        } else {
            0.0
        },
        noise: rng.range(0.02, 0.2),
        month_start: if rng.chance(0.3) {
            rng.range(2.0, 20.0)
        } else {
            0.0
        },
    };
    let mut v = normal_series(&shape, days, rng);
    let mut windows = Vec::new();
    let mut t = 20 + rng.index(20);
    while t + 10 < days {
        let kind = rng.index(4);
        match kind {
            // Spike or drop of 1–3 days, 4–12 noise widths.
            0 | 1 => {
                let len = 1 + rng.index(3);
                let size = rng.range(4.0, 12.0) * shape.noise.max(0.05);
                let factor = if kind == 0 {
                    1.0 + size
                } else {
                    (1.0 - size).max(0.05)
                };
                for x in v.iter_mut().skip(t).take(len) {
                    *x *= factor;
                }
                windows.push((t, t + len - 1));
            }
            // Level shift from t on: the first week is the window.
            2 => {
                let size = rng.range(3.0, 8.0) * shape.noise.max(0.05);
                let factor = if rng.chance(0.5) {
                    1.0 + size
                } else {
                    (1.0 - size).max(0.2)
                };
                for x in v.iter_mut().skip(t) {
                    *x *= factor;
                }
                windows.push((t, (t + 6).min(days - 1)));
            }
            // Slow drift: +40–100 % over 28 days, staying.
            _ => {
                let total = rng.range(0.4, 1.0);
                for (j, x) in v.iter_mut().enumerate().skip(t) {
                    let ramp = ((j - t) as f64 / 28.0).min(1.0);
                    *x *= 1.0 + total * ramp;
                }
                windows.push((t, (t + 27).min(days - 1)));
            }
        }
        t += 35 + rng.index(40);
    }
    let mut values: Vec<Option<f64>> = v.into_iter().map(Some).collect();
    if rng.chance(0.2) {
        for _ in 0..3 {
            let i = rng.index(days);
            values[i] = None;
        }
    }
    Labelled { values, windows }
}

/// Scores flagged indices like `anomaly-eval` (warm-up 14 days, day-level precision, event recall,
/// false-alert episodes). Returns (flagged_in, flagged_total, events_hit, events, fp_episodes,
/// scored_days).
pub fn score(flags: &[bool], l: &Labelled, warmup: usize) -> [usize; 6] {
    let n = flags.len();
    let mut in_event = vec![false; n];
    let mut ignore = vec![false; n];
    let mut hit = 0;
    let mut events = 0;
    for &(a, b) in &l.windows {
        if a < warmup {
            for x in ignore.iter_mut().take(b + 1).skip(a) {
                *x = true;
            }
            continue;
        }
        events += 1;
        for x in in_event.iter_mut().take(b + 1).skip(a) {
            *x = true;
        }
        if (a..=b).any(|i| flags[i]) {
            hit += 1;
        }
    }
    let scored = |i: usize| i >= warmup && !ignore[i] && l.values[i].is_some();
    let mut total = 0;
    let mut inside = 0;
    let mut fp_eps = 0;
    let mut prev_fp = false;
    let mut days = 0;
    for i in 0..n {
        if scored(i) {
            days += 1;
        }
        let f = flags[i] && scored(i);
        if f {
            total += 1;
            if in_event[i] {
                inside += 1;
            }
        }
        let fp = f && !in_event[i];
        if fp && !prev_fp {
            fp_eps += 1;
        }
        prev_fp = fp;
    }
    [inside, total, hit, events, fp_eps, days]
}
