//! Every bound Switchyard enforces, as a named constant with its unit and
//! its reason. Config may override some of them; these are the defaults.

/// Deepest parenthesis nesting accepted in a name tree. Parsing, printing
/// and binding recurse over trees, and trees arrive from the network in
/// `l5d-dtab` headers: the bound keeps hostile input from exhausting a
/// shard's stack. Real dtabs nest two or three levels.
pub const DTAB_TREE_NESTING_MAX: usize = 32;

/// Lookups one branch of a delegation may make, the final namer lookup
/// counted: Finagle's `namerMaxDepth` default (`reference/dtab-semantics.md`
/// §7). A delegation loop fails after this many steps.
pub const NAMER_MAX_DEPTH_DEFAULT: usize = 100;

/// Lookups one whole bind may make, across all its branches. Finagle has no
/// such bound: alternatives and unions that fan out (`/a => /b | /b`,
/// repeated) make the work grow exponentially with depth while every single
/// branch stays under [`NAMER_MAX_DEPTH_DEFAULT`], and an `l5d-dtab` header
/// can ask for that. Real delegations make a handful of lookups; the Part VI
/// ingress bind makes six.
pub const BIND_LOOKUPS_MAX: usize = 1_000;

/// Nodes the delegation explainer may visit. It binds every alternative, so
/// it does more work than a bind; it serves operators, not requests.
pub const EXPLAIN_LOOKUPS_MAX: usize = 10_000;
