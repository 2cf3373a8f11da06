//! Interoperability tests live in `tests/`: a QuickFIX C++ initiator (through the `quickfix`
//! crate) against the gateway. This library is empty.
