//! False-flag rate of the detector on pure noise, by length of history: the check that the
//! threshold means what it says (P(|Z| > 3.5) ≈ 4.7e-4 per day) however short the history.
//! `cargo run --release --example null_calibration`
#[path = "../tests/common/synth.rs"]
mod synth;

use sixpence_analytics::{DayAssessment, DetectorConfig, assess_window};

fn main() {
    let cfg = DetectorConfig::default();
    let date = time::macros::date!(2024 - 06 - 12);
    let mut rng = synth::Rng(42);
    for len in [15usize, 17, 19, 21, 23, 25, 28, 42, 91] {
        let trials = 50_000;
        let mut flagged = 0;
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for _ in 0..trials {
            let w: Vec<Option<f64>> = (0..len)
                .map(|_| Some(100.0 * (0.1 * rng.normal()).exp()))
                .collect();
            if let DayAssessment::Anomalous(f) = assess_window(&w, date, &cfg) {
                flagged += 1;
                *kinds
                    .entry(if f.weekly { "weekly" } else { f.kind.as_str() })
                    .or_default() += 1;
            }
        }
        println!(
            "history {:3} days: false-flag rate {:.2e} (nominal for k = 3: 2.7e-3) {kinds:?}",
            len - 1,
            flagged as f64 / trials as f64
        );
    }
}
