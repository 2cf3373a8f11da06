//! Runs the conformance scenarios against a FIX 4.2 acceptor.
//!
//! fix-conformance --host 127.0.0.1 --port 9878 --sender CLIENT1 --target EXCH \
//!     [--dir conformance/scenarios] [--symbol ACME] [--price 100.00] [--only 2b] [--timeout-ms 5000]

use conformance_runner::{load_dir, run, Target};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    if args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("usage: fix-conformance --host H --port P --sender OURCOMPID --target THEIRCOMPID [--dir DIR] [--symbol S] [--price P] [--only PREFIX] [--timeout-ms MS]");
        return ExitCode::SUCCESS;
    }
    let target = Target {
        addr: format!("{}:{}", opt("--host", "127.0.0.1"), opt("--port", "9878")),
        sender: opt("--sender", "CLIENT1"),
        target: opt("--target", "EXCH"),
        symbol: opt("--symbol", "ACME"),
        price: opt("--price", "100.00"),
        timeout: Duration::from_millis(opt("--timeout-ms", "5000").parse().unwrap_or(5000)),
    };
    let dir = opt("--dir", "conformance/scenarios");
    let only = opt("--only", "");
    let scenarios = match load_dir(std::path::Path::new(&dir)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = 0;
    for (file, s) in scenarios.iter().filter(|(f, _)| f.starts_with(&only)) {
        match run(s, &target) {
            Ok(()) => println!("PASS {file}  {}", s.name),
            Err(f) => {
                failed += 1;
                println!("FAIL {file}  {}  ({f})", s.name);
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
