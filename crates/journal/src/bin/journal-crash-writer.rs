//! Crash-test writer: opens (recovering) the journal in the directory given
//! as the first argument, appends frames whose payload is a deterministic
//! function of the sequence as fast as it can, and prints the committed
//! sequence to stdout every 64 frames. It runs until killed (or until the
//! optional second argument, a sequence limit, is reached).

use journal::testkit::{payload_for, template_for};
use journal::{Journal, JournalConfig};
use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: journal-crash-writer <dir> [max_seq]");
    let max_seq: u64 = args
        .next()
        .map(|s| s.parse().expect("max_seq"))
        .unwrap_or(u64::MAX);
    let mut cfg = JournalConfig::in_dir(dir);
    cfg.segment_size = 64 * 1024;
    cfg.segments_max = 1 << 20;
    cfg.index_entries_max = 128;
    cfg.index_stride = 8;
    cfg.payload_len_max = 512;
    let (journal, mut seq) = match Journal::open(cfg) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("open failed: {e}");
            std::process::exit(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{}", journal.committed_seq()).expect("stdout");
    out.flush().expect("stdout");
    let mut buf = Vec::with_capacity(512);
    loop {
        let next = seq.written_seq() + 1;
        if next > max_seq {
            break;
        }
        payload_for(next, &mut buf);
        let s = seq.append(template_for(next), &buf).expect("append");
        assert_eq!(s, next);
        if s % 64 == 0 {
            writeln!(out, "{}", journal.committed_seq()).expect("stdout");
            out.flush().expect("stdout");
        }
    }
}
