//! Scores the detector on seeded synthetic spend-like series (a check independent of the NAB
//! development set): `cargo run --release --example synth_eval [-- SERIES [SEED]]`.
#[path = "../tests/common/synth.rs"]
mod synth;

use sixpence_analytics::{DailySeries, DetectorConfig, Sensitivity, replay};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(300);
    let seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    for sens in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
        let mut rng = synth::Rng(seed);
        let cfg = DetectorConfig { sensitivity: sens };
        let mut tot = [0usize; 6];
        let mut fp_kinds: std::collections::BTreeMap<&'static str, usize> = Default::default();
        let start = time::macros::date!(2024 - 01 - 01);
        for _ in 0..count {
            let l = synth::random_labelled(&mut rng);
            let series = DailySeries::from_values(start, l.values.clone());
            let mut flags = vec![false; l.values.len()];
            let all = replay(&series, &cfg);
            for f in &all {
                if let Some(i) = series.index_of(f.date) {
                    flags[i] = true;
                }
            }
            // Which rule raised the flags outside every labelled window.
            for f in &all {
                if let Some(i) = series.index_of(f.date)
                    && i >= 14
                    && !l.windows.iter().any(|&(a, b)| a <= i && i <= b)
                {
                    *fp_kinds.entry(f.kind.as_str()).or_default() += 1;
                }
            }
            let s = synth::score(&flags, &l, 14);
            for k in 0..6 {
                tot[k] += s[k];
            }
        }
        let p = tot[0] as f64 / tot[1].max(1) as f64;
        let r = tot[2] as f64 / tot[3].max(1) as f64;
        let fc = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        let fpm = tot[4] as f64 / (tot[5] as f64 / 30.4375);
        println!(
            "{sens:?}: Fc={fc:.3} recall={r:.3} ({}/{}) precision_day={p:.3} fp/series-month={fpm:.2}",
            tot[2], tot[3]
        );
        println!("  false-alert days by kind: {fp_kinds:?}");
    }
}
