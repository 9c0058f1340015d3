//! Evaluation entry point: `detect detect --csv FILE [--min-impact X]`.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = sixpence_analytics::detect_cli(&args, &mut out) {
        eprintln!("{e}");
        std::process::exit(2);
    }
}
