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

// ---- HTTP/1.1 data plane ------------------------------------------------

/// Bytes of a request head (request line and headers) before 431. Bounds
/// per-connection memory while a head is incomplete. nginx's default
/// `large_client_header_buffers` is 4 x 8 KiB; linkerd 1 capped headers at 8 KiB.
pub const REQUEST_HEAD_BYTES_MAX: usize = 32 * 1024;

/// Header lines in a request before 431 (Host included).
pub const REQUEST_HEADERS_MAX: usize = 100;

/// Bytes of a request target before 414.
pub const REQUEST_TARGET_BYTES_MAX: usize = 8 * 1024;

/// Bytes of a method token before 501: no registered method comes close.
pub const METHOD_BYTES_MAX: usize = 32;

/// Request body bytes before 413 (Content-Length or the running total of a
/// chunked body). nginx's `client_max_body_size` default is 1 MiB; proxies of
/// internal traffic see larger uploads.
pub const REQUEST_BODY_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Bytes of one chunk-size line's extensions before 400 (hyper caps the total
/// at 16 KiB). Switchyard validates and then drops extensions.
pub const CHUNK_EXT_BYTES_MAX: usize = 4 * 1024;

/// Bytes of a chunked body's trailer section before 400. Trailers are
/// validated and dropped.
pub const TRAILER_BYTES_MAX: usize = 8 * 1024;

/// Hex digits in a chunk size: 16 cover a u64; more is an attack on the
/// arithmetic.
pub const CHUNK_SIZE_DIGITS_MAX: usize = 16;

/// Bytes of a response head from an upstream before 502.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 64 * 1024;

/// Header lines in a response before 502.
pub const RESPONSE_HEADERS_MAX: usize = 128;

/// Switchyard's own `Via` entries a request may already carry before it is
/// refused as a proxy loop (400). Other proxies' entries are not counted, so
/// a client cannot pre-fill the header to make requests fail.
pub const VIA_OWN_HOPS_MAX: usize = 16;

/// Bytes of all `l5d-ctx-dtab` and `l5d-dtab` values of one request before
/// 400. Overrides are a few rules; a large one is an attack on the parser
/// and the binder.
pub const DTAB_HEADER_BYTES_MAX: usize = 4 * 1024;

/// Dentries in one request's local dtab before 400: each dentry adds work to
/// every lookup of the bind.
pub const DTAB_LOCAL_DENTRIES_MAX: usize = 64;

/// Capacity a client connection's read buffer starts with: what a
/// connection that only ever sends small heads keeps while it waits for its
/// next request, so ten thousand idle keep-alive clients cost a few MiB of
/// buffers rather than forty (nginx's `client_header_buffer_size` is 1k for
/// the same reason). The first head longer than this, or the first body
/// read, grows it by [`READ_BUFFER_BYTES`] for the connection's life: one
/// extra read, once per connection.
pub const READ_BUFFER_FIRST_BYTES: usize = 1024;

/// Capacity a read buffer has once it reads more than a small head (body
/// bytes, a long head); it grows further (to the head limit) only for large
/// heads.
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Capacity an upstream connection's read buffer starts with: room for a
/// 16 KiB response and its head in one read (with 16 KiB, such a response
/// took two reads and three writes instead of one read and two). Upstream
/// connections are few (a pool per endpoint), unlike client connections,
/// and pages are only touched as far as responses fill them.
pub const UPSTREAM_READ_BUFFER_BYTES: usize = 32 * 1024;

/// Response body bytes already read that go out in the same write as the
/// head: a small response leaves as one write and one segment, so the
/// client wakes once, not once for the head and again for the body. Small,
/// because they are copied behind the head, and the connection keeps the
/// head buffer's capacity for its life: a larger body is written straight
/// from the read buffer.
pub const COALESCE_BODY_BYTES_MAX: usize = 4 * 1024;

/// Request body bytes already read with their head that go out in the
/// head's write: the upstream gets a small request whole, in one segment,
/// as nginx and HAProxy send it. The bound is what a first read holds
/// ([`READ_BUFFER_BYTES`]); copying that much costs less than a second
/// write. A larger body, or one still arriving, is streamed after the head.
pub const COALESCE_REQUEST_BODY_BYTES_MAX: usize = READ_BUFFER_BYTES;

/// Request body bytes left (already read or still to come) that the proxy
/// drops after an upstream answered before taking them, or after its own
/// error answer, to keep the client's connection: a request with more left
/// than this has its connection closed instead, which also stops its upload.
pub const DISCARD_BODY_BYTES_MAX: u64 = 1024 * 1024;

/// Capacity a client connection's write buffer starts with: room for a
/// rewritten head of a typical request (about 300 bytes with routing
/// headers); it grows for longer ones or for small bodies sent behind
/// their head.
pub const WRITE_BUFFER_FIRST_BYTES: usize = 512;

/// Write buffers a shard keeps for client connections between their
/// requests (see `proxy::session::SpareBuffers`): as many requests as a
/// shard serves at once reuse them without allocating; an idle connection
/// holds none.
pub const SPARE_WRITE_BUFFERS_MAX: usize = 256;

/// Idle upstream connections kept per endpoint per shard.
pub const POOL_IDLE_PER_ENDPOINT_MAX: usize = 64;

/// A pooled connection idle for less than this, whose last request had no
/// body, is reused without first peeking for the peer's FIN or stray bytes
/// (a syscall per request at any load). Servers
/// close idle keep-alive connections after seconds (nginx 75 s, Node 5 s,
/// Go 90 s), so one released this recently has not timed out; a server that
/// closes right after a response without saying so races a peek too, and
/// bodiless idempotent requests are retried once on a fresh connection when
/// that happens.
pub const POOL_PEEK_AFTER: std::time::Duration = std::time::Duration::from_millis(10);
