//! Switchyard's integration tests: one binary, shared helpers.
//!
//! Test code is not shard code: it sleeps to pace slow clients and shares
//! recordings between threads behind mutexes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod access_log;
mod admin;
mod cli;
mod demo;
mod driver;
mod dtab_conformance;
mod dtab_conformance_wire;
mod fake_apiserver;
mod fs_namer;
mod fuzz_corpus;
mod http1_adversarial;
mod k8s;
mod manifests;
mod playground;
mod proxy;
mod support;
mod two_nodes;
