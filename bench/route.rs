//! The `route` phase with and without the per-shard route cache: a request
//! for `www.hello.world` through the Part VI ingress dtab, with a staging
//! `l5d-dtab` header on a mesh listener. A repeated name with a repeated
//! override costs a hash lookup; the first one parses the override and binds.
//!
//! Run with `cargo bench --bench route`.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use switchyard::config::Config;
use switchyard::http1::request::{RequestLimits, parse_request};
use switchyard::proxy::route::{Outstanding, Rng, RouteCache, RouteCx, route};
use switchyard::routing::GlobalNamer;
use switchyard::routing::snapshot::Snapshot;

const CONFIG: &str = "routers:
- protocol: http
  label: ingress
  dtab: |
    /srv                    => /$/inet/10.0.0.7 ;
    /domain/world/hello/www => /srv/7777 ;
    /host                   => /$/io.buoyant.http.domainToPathPfx/domain ;
    /svc                    => /host ;
  servers:
  - port: 0
";

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: www.hello.world\r\nl5d-dtab: /host/world => /srv/world-v2;\r\n\r\n";

fn bench_route(c: &mut Criterion) {
    let config = Config::from_yaml(CONFIG).expect("config");
    let router = &config.routers[0];
    let server = &router.servers[0];
    let snapshot = Snapshot::default();
    let global = GlobalNamer::new();
    let outstanding = Outstanding::default();
    let metrics = switchyard::telemetry::ListenerMetrics::default();
    let mut scanned = 0;
    let head = parse_request(REQUEST, &mut scanned, &RequestLimits::default())
        .expect("valid")
        .expect("complete");
    let peer = "127.0.0.1".parse().expect("ip");
    let mut rng = Rng::new(7);
    let warm = RouteCache::default();
    let cx = |cache| RouteCx {
        router,
        server,
        snapshot: &snapshot,
        global: &global,
        cache,
        outstanding: &outstanding,
        metrics: Some(&metrics),
    };
    let r = route(&cx(&warm), peer, &head, REQUEST, &mut rng).expect("routes");
    assert_eq!(r.addr, "10.0.0.7:7777".parse().expect("addr"));
    let mut group = c.benchmark_group("route (l5d-dtab on every request)");
    group.bench_function("cached", |b| {
        b.iter(|| route(&cx(&warm), peer, black_box(&head), REQUEST, &mut rng).map(|r| r.addr))
    });
    group.bench_function("uncached (parse the override and bind)", |b| {
        b.iter(|| {
            let cold = RouteCache::default();
            let cx = RouteCx {
                router,
                server,
                snapshot: &snapshot,
                global: &global,
                cache: &cold,
                outstanding: &outstanding,
                metrics: Some(&metrics),
            };
            route(&cx, peer, black_box(&head), REQUEST, &mut rng).map(|r| r.addr)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_route);
criterion_main!(benches);
