//! # Switchyard
//!
//! A shard-per-core HTTP/1.1 proxy that brings linkerd 1's per-request
//! routing (Finagle dtabs, `l5d-dtab` overrides that travel with the request
//! as `l5d-ctx-dtab`) to Kubernetes at the lowest latency we can reach.
//!
//! ## Threads and data flow
//!
//! - `shard-{i}`, one per core, pinned, each with its own runtime and
//!   `SO_REUSEPORT` listener: reads a request head into a shard-owned
//!   buffer, parses it in place, identifies the logical name, binds it
//!   through the router dtab plus the request's overrides, picks an
//!   endpoint, and streams the exchange over a pooled keep-alive upstream
//!   connection. Shards share nothing mutable.
//! - `discovery`: watches the file directory (or Kubernetes) and publishes
//!   immutable endpoint snapshots; each shard picks up the newest between
//!   requests.
//! - `admin`: readiness, metrics (merged from shard-local cells on
//!   scrape) and the dtab playground.
//!
//! ## Modules
//!
//! - [`routing`]: dtabs, name trees, delegation, binding, namers,
//!   identifiers, the explainer. Pure: no IO.
//! - [`limits`]: every bound, named and documented.

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod http1;
pub mod limits;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod telemetry;
pub mod timer;
