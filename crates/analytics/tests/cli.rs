//! The `detect` command used by `sixpence detect` and by the evaluation.
use sixpence_analytics::{CliError, detect_cli};

fn write_csv(name: &str, body: &str) -> String {
    let dir = std::env::temp_dir().join(format!("sixpence-analytics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

fn csv_with_spike() -> String {
    let mut s = String::from("timestamp,value\n");
    let start = time::macros::date!(2024 - 01 - 01);
    for i in 0..60 {
        let d = start + time::Duration::days(i);
        let v = if i == 45 {
            900.0
        } else {
            100.0 + ((i * 7) % 5) as f64
        };
        if i == 30 {
            s.push_str(&format!("{d},\n"));
        } else {
            s.push_str(&format!("{d},{v}\n"));
        }
    }
    s
}

fn run(args: &[&str]) -> Result<Vec<serde_json::Value>, CliError> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    detect_cli(&args, &mut out)?;
    Ok(String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

#[test]
fn detect_prints_one_json_line_per_flagged_day_with_every_key() {
    let path = write_csv("spike.csv", &csv_with_spike());
    let lines = run(&["detect", "--csv", &path]).unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(l["date"], "2024-02-15");
    assert_eq!(l["direction"], "up");
    assert_eq!(l["kind"], "spike");
    for key in ["actual", "expected", "lower", "upper", "impact", "score"] {
        assert!(l[key].as_f64().is_some_and(f64::is_finite), "{key}");
    }
}

#[test]
fn arguments_are_accepted_in_any_order_and_the_currency_gate_filters() {
    let path = write_csv("order.csv", &csv_with_spike());
    assert_eq!(
        run(&["--csv", &path, "detect", "--min-impact", "0"])
            .unwrap()
            .len(),
        1
    );
    assert!(
        run(&["--min-impact", "10000", "detect", "--csv", &path])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_arguments_and_bad_files_are_clear_errors() {
    assert!(matches!(run(&["detect"]), Err(CliError::Usage(_))));
    assert!(matches!(run(&["detect", "--csv"]), Err(CliError::Usage(_))));
    assert!(matches!(
        run(&["detect", "--csv", "x", "--min-impact", "-1"]),
        Err(CliError::Usage(_))
    ));
    assert!(matches!(
        run(&["detect", "--csv", "/nonexistent/x.csv"]),
        Err(CliError::Read { .. })
    ));
    let bad = write_csv("bad.csv", "timestamp,value\n2024-01-01,abc\n");
    assert!(matches!(
        run(&["detect", "--csv", &bad]),
        Err(CliError::Csv { line: 2, .. })
    ));
    let empty = write_csv("empty.csv", "timestamp,value\n");
    assert!(run(&["detect", "--csv", &empty]).unwrap().is_empty());
}
