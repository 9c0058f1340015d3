//! Nightly decision throughput: one new day per series with 90 days of history, i.e. exactly what
//! the `anomaly-detect` queue handler does per series per night (no replay). Also the full causal
//! replay of the NAB development set, when the fixtures are present next to the repository.
//!
//! `cargo bench -p sixpence-analytics --bench nightly` (criterion reports series/s as elements/s;
//! the benchmark is single-threaded, so that is per core).

#[path = "../tests/common/synth.rs"]
mod synth;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sixpence_analytics::{DailySeries, DetectorConfig, assess_window, cli::parse_csv, replay};
use std::hint::black_box;
use time::macros::date;

const SERIES: usize = 1000;

fn windows() -> Vec<Vec<Option<f64>>> {
    let mut rng = synth::Rng(2024);
    (0..SERIES)
        .map(|i| {
            let shape = synth::Shape {
                level: 10f64.powf(rng.range(0.0, 5.0)),
                weekend: if i % 2 == 0 { rng.range(0.2, 0.8) } else { 1.0 },
                growth_per_day: rng.range(0.0, 0.002),
                noise: rng.range(0.02, 0.2),
                month_start: if i % 3 == 0 { 5.0 } else { 0.0 },
            };
            let mut v = synth::normal_series(&shape, 91, &mut rng);
            // A tenth of the series end on an anomaly, as some do every night.
            if i % 10 == 0 {
                v[90] *= 3.0;
            }
            v.into_iter().map(Some).collect()
        })
        .collect()
}

fn nightly(c: &mut Criterion) {
    let ws = windows();
    let cfg = DetectorConfig::default();
    let today = date!(2024 - 03 - 31);
    let mut g = c.benchmark_group("nightly");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("assess_last_day_90d_history", |b| {
        b.iter(|| {
            for w in &ws {
                black_box(assess_window(black_box(w), today, &cfg));
            }
        })
    });
    // The nightly job proper re-assesses the last three days (restatements): three decisions.
    let series: Vec<DailySeries> = ws
        .iter()
        .map(|w| DailySeries::from_values(date!(2024 - 01 - 01), w.clone()))
        .collect();
    g.bench_function("nightly_reassess_last_3_days", |b| {
        b.iter(|| {
            for s in &series {
                black_box(sixpence_analytics::nightly(
                    black_box(s),
                    date!(2024 - 03 - 31),
                    &cfg,
                ));
            }
        })
    });
    g.finish();
}

fn dev_set_replay(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/anomaly/nab-daily-dev");
    let mut series: Vec<DailySeries> = Vec::new();
    for cat in ["realAdExchange", "realKnownCause", "realTweets"] {
        let Ok(entries) = std::fs::read_dir(dir.join(cat)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(s) = parse_csv(&path.to_string_lossy(), &text)
            {
                series.push(s);
            }
        }
    }
    if series.is_empty() {
        eprintln!(
            "dev set not found under {}; skipping the replay benchmark",
            dir.display()
        );
        return;
    }
    let days: usize = series.iter().map(DailySeries::len).sum();
    let cfg = DetectorConfig::default();
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(days as u64));
    g.bench_function(
        format!("nab_dev_{}_series_{days}_days", series.len()),
        |b| {
            b.iter(|| {
                for s in &series {
                    black_box(replay(black_box(s), &cfg));
                }
            })
        },
    );
    g.finish();
}

criterion_group!(benches, nightly, dev_set_replay);
criterion_main!(benches);
