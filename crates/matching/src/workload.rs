//! Workload generator (filled in later).
