//! CI smoke run of the load generator against the real appliance binary and the QuickFIX
//! reference acceptor: three sessions, a two-instrument stream (400 book-building orders, then
//! about 3,000 requests at 2,000/s), every report checked. The run fails on any correctness
//! violation: an order without exactly one terminal state, fills whose two sides do not add up
//! or that the market-data feed does not show as trades, a FIX sequence gap, a disconnect.
//!
//! A second run goes over TLS (the appliance's generated certificate trusted), appliance only.
//!
//! How it gets the appliance: cargo hands `CARGO_BIN_EXE_*` only to the binary's own crate, so
//! the test runs `$CARGO build -p appliance --bin appliance` itself (same workspace, same
//! profile, same target directory as this test, found from the test executable's path:
//! `<target>/<profile>/deps/smoke-*`). Cargo releases its build-directory lock before it runs
//! test binaries, so the nested build does not deadlock, and when the appliance is already built
//! it is a no-op. The appliance gets its own data directory, port 0 listeners and a multicast
//! group derived from the process id, so this runs in parallel with other tests.

use std::path::PathBuf;
use std::process::Command;

fn appliance_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf();
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name")
        .to_string();
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut build = Command::new(env!("CARGO"));
    build.current_dir(&workspace).args([
        "build",
        "--quiet",
        "-p",
        "appliance",
        "--bin",
        "appliance",
    ]);
    if profile != "debug" {
        build.args(["--profile", &profile]);
    }
    if let Some(target) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target);
    }
    let status = build.status().expect("running cargo build -p appliance");
    assert!(
        status.success(),
        "cargo build -p appliance failed: {status}"
    );
    let bin = profile_dir.join(format!("appliance{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// Runs `loadgen run <args>` against the appliance binary, with its work directory in `work`,
/// and returns its standard output; fails the test if it exits unsuccessfully.
fn run_loadgen(work: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .args(args)
        .arg("--appliance-bin")
        .arg(appliance_binary())
        .arg("--work-dir")
        .arg(work)
        .env("LOADGEN_APPLIANCE_LOG", "error")
        .output()
        .expect("running loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "loadgen failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The summary line of one target (`<target> rate ...: sent ... violations N`).
fn summary<'a>(stdout: &'a str, target: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(target) && l.contains(" sent "))
        .unwrap_or_else(|| panic!("no summary for {target}:\n{stdout}"))
}

/// A counter of a summary line (`... <name> N ...`).
fn field(line: &str, name: &str) -> u64 {
    let at = line.find(&format!(" {name} ")).unwrap() + name.len() + 2;
    line[at..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_short_load_against_the_appliance_and_quickfix_has_no_violation() {
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("out");
    let stdout = run_loadgen(
        work.path(),
        &[
            "--sessions",
            "3",
            "--rates",
            "2000",
            "--duration-secs",
            "1.5",
            "--warmup-secs",
            "0.5",
            "--instruments",
            "2",
            "--resting",
            "200",
            "--fill-rate",
            "5000",
            "--targets",
            "appliance,quickfix",
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    // Both targets answered every request, and the appliance traded and published the trades.
    for target in ["appliance", "quickfix"] {
        let l = summary(&stdout, target);
        assert!(l.ends_with("violations 0"), "{l}");
        assert!(field(l, "sent") > 3_000, "{l}");
        assert_eq!(field(l, "sent"), field(l, "answered"), "{l}");
    }
    let l = summary(&stdout, "appliance");
    assert!(!l.contains(" fills 0 "), "the stream trades: {l}");
    assert!(!l.contains(" md-trades 0 "), "trades reach the feed: {l}");
    let summary = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 3, "{summary}");
    assert!(out_dir.join("appliance-2000-new.hgrm").exists());
}

#[test]
fn a_short_load_over_tls_has_no_violation() {
    let work = tempfile::tempdir().unwrap();
    let stdout = run_loadgen(
        work.path(),
        &[
            "--tls",
            "--sessions",
            "2",
            "--rates",
            "2000",
            "--duration-secs",
            "1",
            "--warmup-secs",
            "0.5",
            "--instruments",
            "1",
            "--resting",
            "200",
            "--fill-rate",
            "5000",
            "--targets",
            "appliance",
        ],
    );
    let line = summary(&stdout, "appliance");
    assert!(line.ends_with("violations 0"), "{line}");
    assert!(!line.contains(" fills 0 "), "{line}");
}

#[test]
fn cancels_the_acceptor_refuses_are_retried_until_every_order_is_closed() {
    // Each session limited to 2,000 messages/s with a burst of 60, refusing the excess with a
    // BusinessMessageReject: the final cancel-all phase sends each session's open orders back
    // to back, well past the burst, so some cancels are refused and their orders stay open.
    // The load generator must send those again (new ClOrdIDs, after a pause) until every
    // order has its terminal state; with a single round this run reports a violation.
    let work = tempfile::tempdir().unwrap();
    let stdout = run_loadgen(
        work.path(),
        &[
            "--sessions",
            "2",
            "--rates",
            "400",
            "--duration-secs",
            "1",
            "--warmup-secs",
            "0.2",
            "--instruments",
            "2",
            "--resting",
            "200",
            "--fill-rate",
            "1000",
            "--session-rate-limit",
            "2000,60",
            "--targets",
            "appliance",
        ],
    );
    let line = summary(&stdout, "appliance");
    assert!(line.ends_with("violations 0"), "{line}\n{stdout}");
    assert!(
        field(line, "errors") > 0,
        "no request was refused, the retry was not exercised: {line}"
    );
}
