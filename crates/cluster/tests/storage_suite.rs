//! openraft's own conformance suite for storage implementations (log store and state machine:
//! votes, appends, truncation, purge, membership, applied state, snapshot transfer), run against
//! ours on real files.

use cluster::sm::StateMachine;
use cluster::store::LogStore;
use cluster::{NodeId, TypeConfig};
use journal::{ExternalClock, Journal, JournalConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use std::sync::Arc;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ExternalClock::new(0));
        let mut jc = JournalConfig::in_dir(dir.path().join("inbound"));
        jc.segment_size = 1 << 20;
        jc.index_entries_max = 1024;
        let (journal, mut seq) = Journal::open_with_clock(jc, clock.clone()).unwrap();
        let _ = seq.take_handoff();
        let log = LogStore::open(&dir.path().join("raft"), true).unwrap();
        let sm = StateMachine::open(&dir.path().join("raft"), journal, seq, clock).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
