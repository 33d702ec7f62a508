//! Routing: Finagle dtabs with linkerd 1's exact semantics, sans IO.
//!
//! Owns paths, name trees, the dtab parser and printer, the compiled dtab
//! trie, delegation and binding, namers, identifiers and the explainer. It
//! never touches a socket, a runtime, or another Switchyard module above it
//! (`proxy`, `runtime`, `discovery`, `admin`), so it can be fuzzed and
//! benchmarked alone.
//!
//! The flow for one request: an [`identify::Identifier`] turns the request
//! into a logical name (`/svc/www.hello.world`); the request's overrides
//! (`l5d-ctx-dtab` then `l5d-dtab`) parse into a local [`Dtab`]; an
//! [`Interpreter`] binds the name through `router dtab ++ local dtab`, the
//! configured namers and the global `/$/` namers, into a [`BoundTree`].

pub mod bind;
pub mod dtab;
pub mod explain;
pub mod fuzzing;
pub mod identify;
pub mod namer;
pub mod nametree;
pub mod parse;
pub mod path;
pub mod policy;
pub mod snapshot;
pub mod trie;

pub use bind::{BoundLeaf, BoundTree, DentrySource, Interpreter};
pub use dtab::{Dentry, Dtab, Prefix, PrefixElem, local_dtab};
pub use explain::DelegateTree;
pub use namer::{
    Addr, BindError, Bound, Endpoint, GlobalNamer, Lookup, Mount, Name, Namer, NamerSet, NoNamers,
    StaticNamers,
};
pub use nametree::{NameTree, Weighted};
pub use parse::ParseError;
pub use path::Path;
pub use trie::CompiledDtab;
