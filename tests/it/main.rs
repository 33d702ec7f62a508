//! Switchyard's integration tests: one binary, shared helpers.

mod cli;
mod dtab_conformance;
mod support;
