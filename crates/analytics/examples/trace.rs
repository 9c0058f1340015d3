//! Prints the assessment of every day of a CSV series: `trace FILE [low|medium|high]`.
use sixpence_analytics::{DayAssessment, DetectorConfig, Sensitivity, assess_day, cli::parse_csv};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: trace FILE [low|medium|high]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let series = match parse_csv(path, &text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let sensitivity = match args.get(1).map(String::as_str) {
        Some("low") => Sensitivity::Low,
        Some("high") => Sensitivity::High,
        _ => Sensitivity::Medium,
    };
    let cfg = DetectorConfig { sensitivity };
    for i in 0..series.len() {
        let d = series.date_at(i);
        let v = series.values()[i];
        match assess_day(&series, d, &cfg) {
            DayAssessment::Normal(b) => println!(
                "{d} {:>12.3} exp {:>12.3} [{:>12.3} {:>12.3}] z {:>6.2} {}",
                v.unwrap_or(f64::NAN),
                b.expected,
                b.lower,
                b.upper,
                b.score,
                if b.weekly { "W" } else { "" }
            ),
            DayAssessment::Anomalous(f) => println!(
                "{d} {:>12.3} exp {:>12.3} [{:>12.3} {:>12.3}] s {:>6.2} {} <== {}",
                f.actual,
                f.expected,
                f.lower,
                f.upper,
                f.score,
                if f.weekly { "W" } else { "" },
                f.kind.as_str()
            ),
            other => println!("{d} {other:?}"),
        }
    }
}
