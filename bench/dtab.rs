//! Routing-engine benchmarks: parsing an override header, binding the Part VI
//! ingress name, and one lookup step on cluster-sized dtabs.
//!
//! Run with `cargo bench --bench dtab`; the figures are recorded in the
//! README.

use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use std::sync::Arc;
use switchyard::routing::trie::Matches;
use switchyard::routing::{
    Addr, CompiledDtab, Dtab, Endpoint, GlobalNamer, Interpreter, NoNamers, Path, StaticNamers,
    local_dtab,
};

/// The Part VI ingress router's dtab (linkerd-examples
/// `k8s-daemonset/k8s/linkerd-ingress.yml`).
const INGRESS: &str = "
    /srv                    => /#/io.l5d.k8s/default/http ;
    /domain/world/hello/www => /srv/hello ;
    /domain/world/hello/api => /srv/api ;
    /host                   => /$/io.buoyant.http.domainToPathPfx/domain ;
    /svc                    => /host ;";

fn bench_parse(c: &mut Criterion) {
    let header: &[u8] = b"/host/world => /srv/world-v2;";
    c.bench_function("parse l5d-dtab header", |b| {
        b.iter(|| local_dtab(std::iter::empty(), [black_box(header)]).expect("parses"))
    });
}

fn bench_bind(c: &mut Criterion) {
    let base = CompiledDtab::new(Dtab::read(INGRESS).expect("dtab"));
    let mut namers = StaticNamers::new();
    namers.insert(
        Path::read("/#/io.l5d.k8s/default/http/hello").expect("id"),
        Addr::Bound(Arc::from(vec![Endpoint::new("10.0.0.7", 7777)])),
    );
    let global = GlobalNamer::new();
    let local = Dtab::empty();
    let interp = Interpreter {
        base: &base,
        local: &local,
        namers: &namers,
        global: &global,
        max_depth: 100,
        max_lookups: switchyard::limits::BIND_LOOKUPS_MAX,
    };
    let name = Path::read("/svc/www.hello.world").expect("path");
    // Check the benchmark binds what it claims to before timing it.
    let bound = interp.bind(&name);
    assert!(format!("{bound:?}").contains("10.0.0.7"), "{bound:?}");
    c.bench_function("bind /svc/www.hello.world (Part VI ingress)", |b| {
        b.iter(|| interp.bind(black_box(&name)))
    });
}

/// A dtab shaped like a real cluster's: a few router-wide rules, namespace
/// wildcards, and one rule per service.
fn cluster_dtab(services: usize) -> Dtab {
    let mut text = String::from("/srv=>/#/io.l5d.k8s/default/http;/svc=>/srv;/svc/*=>/host;");
    for ns in 0..8 {
        text.push_str(&format!("/ns-{ns}/*=>/#/io.l5d.k8s/ns-{ns}/http;"));
    }
    for i in 0..services {
        text.push_str(&format!(
            "/svc/name-{i}=>/#/io.l5d.k8s/ns-{}/http/name-{i};",
            i % 8
        ));
    }
    Dtab::read(&text).expect("generated dtab parses")
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for rules in [10usize, 1_000, 10_000] {
        let dtab = cluster_dtab(rules);
        // `/svc/name-7/api` matches `/svc`, `/svc/*` and `/svc/name-7`.
        let path = Path::read("/svc/name-7/api").expect("path");
        let compiled = CompiledDtab::new(dtab.clone());
        let local = Dtab::empty();
        let global = GlobalNamer::new();
        let interp = Interpreter {
            base: &compiled,
            local: &local,
            namers: &NoNamers,
            global: &global,
            max_depth: 100,
            max_lookups: switchyard::limits::BIND_LOOKUPS_MAX,
        };
        let mut scratch = Matches::new();
        compiled.matches(&path, &mut scratch);
        assert_eq!(scratch.len(), 3, "three rules match");
        group.bench_with_input(BenchmarkId::new("trie", rules), &path, |b, p| {
            b.iter(|| interp.dtab_lookup(black_box(p), &mut scratch))
        });
        group.bench_with_input(BenchmarkId::new("reverse scan", rules), &path, |b, p| {
            b.iter(|| dtab.lookup(black_box(p)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_bind, bench_lookup);
criterion_main!(benches);
