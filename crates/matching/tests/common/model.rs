//! Reference model (written below).
