//! The per-connection proxy session: the request path from a client's bytes
//! to an upstream and back, as a fixed sequence of phases (`read_head`,
//! `route`, `forward`, `respond`), and the one place errors become responses.
//!
//! Everything here runs on one shard: state is `Rc`/`RefCell` owned by the
//! shard, and no `RefCell` borrow is held across an `.await`.

pub mod deadline;
pub mod direct;
pub mod error;
pub mod pool;
pub mod rewrite;
pub mod route;
pub mod session;

pub use error::{ErrorKind, ProxyError};
pub use session::{ShardCx, serve_connection};
