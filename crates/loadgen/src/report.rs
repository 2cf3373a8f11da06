//! Printing and files: percentiles in microseconds, HdrHistogram percentile distributions
//! (the `.hgrm` text format HdrHistogram's plotters read) and a CSV summary per run.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;

pub fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

/// "p50 / p99 / p99.9 / max" in µs, or "-" for an empty histogram.
pub fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "-".into();
    }
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1}",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}

/// The percentile distribution in HdrHistogram's text format, values in microseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    for v in h.iter_quantiles(1) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            f64::INFINITY
        };
        let _ = writeln!(
            s,
            "{:12.3} {:14.12} {:10} {:14.2}",
            us(v.value_iterated_to()),
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    let _ = writeln!(
        s,
        "#[Mean = {:.3}, StdDeviation = {:.3}]\n#[Max = {:.3}, TotalCount = {}]",
        h.mean() / 1_000.0,
        h.stdev() / 1_000.0,
        us(h.max()),
        h.len()
    );
    s
}

pub fn write_hgrm(dir: &Path, name: &str, h: &Histogram<u64>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}.hgrm")), hgrm(h))
}
