//! Switchyard's integration tests: one binary, shared helpers.

mod cli;
mod dtab_conformance;
mod fuzz_corpus;
mod support;
