//! The dtab conformance vectors (`tests/conformance/dtab.json`, or the file
//! named by `SWITCHYARD_DTAB_CORPUS`): every category, every case, run
//! against the routing engine.
//!
//! Delegation cases that need namers describe a small mock (`env`); it is
//! built here from the case. Finagle's test-only `/$/` namer classes are
//! registered by the harness, as Finagle's tests load them by class name.

use crate::support::{Tally, corpus_path};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use switchyard::routing::explain::Node;
use switchyard::routing::identify::{
    Identified, Identifier, IdentifierKind, RequestHead, consumed_target,
};
use switchyard::routing::{
    Addr, BindError, Bound, BoundTree, CompiledDtab, DelegateTree, Dentry, Dtab, Endpoint,
    GlobalNamer, Interpreter, Lookup, Name, NameTree, Namer, NamerSet, Path, Prefix, PrefixElem,
    local_dtab,
};

/// Cases deliberately not run, each with its reason.
const SKIPPED: &[(&str, &str)] = &[(
    "hdr-008",
    "Finagle's Dtab-Local and X-Dtab headers: linkerd's HTTP router neither applies nor strips them \
     (HttpEndToEndTest \"dtab-local header is ignored\"), and Switchyard follows linkerd",
)];

/// Cases whose error text we do not match, though everything else about
/// them is checked.
const MESSAGE_DIVERGENCES: &[(&str, &str)] = &[(
    "bind-015",
    "plain Finagle reports ClassNotFoundException for /$/inet with no port; Switchyard always reports \
     linkerd's UnknownNamer wording (as bind-115 expects), which names the class and the path",
)];

#[test]
fn dtab_conformance() {
    let path = corpus_path("SWITCHYARD_DTAB_CORPUS", "dtab.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let corpus: Value = serde_json::from_str(&text).expect("corpus is JSON");
    let mut tally = Tally::default();
    let obj = corpus.as_object().expect("corpus is an object");
    for (category, cases) in obj {
        if category == "meta" {
            continue;
        }
        let Some(cases) = cases.as_array() else {
            continue;
        };
        for case in cases {
            let id = case["id"].as_str().unwrap_or("?").to_owned();
            if let Some((_, why)) = SKIPPED.iter().find(|(s, _)| *s == id) {
                tally.skipped.push(format!("{id}: {why}"));
                continue;
            }
            let result = match category.as_str() {
                "path_parse" => path_parse(case),
                "path_show" => path_show(case),
                "prefix_parse" => prefix_parse(case),
                "dtab_parse" => dtab_parse(case),
                "nametree_parse" => nametree_parse(case),
                "simplify_eval" => simplify_eval(case),
                "nametree_roundtrip" => roundtrip(case),
                "delegate" => delegate(case),
                "delegate_explain" => explain(case),
                "headers" => headers(case),
                "identify" => identify(case),
                "dtab_ops" => dtab_ops(case),
                other => Err(format!("unknown category {other}")),
            };
            tally.record(&id, result);
        }
    }
    tally.finish("dtab conformance");
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn check_error(id: &str, got: &str, case: &Value) -> Result<(), String> {
    if MESSAGE_DIVERGENCES.iter().any(|(d, _)| *d == id) {
        return Ok(());
    }
    if let Some(want) = case["error"].as_str() {
        check("error", got, strip_kind(want))?;
    }
    if let Some(c) = case["error_contains"].as_str()
        && !got.contains(c)
        && !strip_kind(s(case, "error")).contains(c)
    {
        return Err(format!("error {got:?} does not contain {c:?}"));
    }
    Ok(())
}

/// `Kind: message` -> `message`, where Kind is one word (an exception
/// class); messages that merely contain a colon are left alone.
fn strip_kind(e: &str) -> &str {
    match e.split_once(": ") {
        Some((k, rest)) if !k.contains(' ') => rest,
        _ => e,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn path_parse(c: &Value) -> Result<(), String> {
    let id = s(c, "id");
    match (Path::read(s(c, "input")), c["ok"].as_bool()) {
        (Ok(p), Some(true)) => {
            check("canonical", p.show().as_str(), s(c, "canonical"))?;
            if let Some(hexes) = c["elems_hex"].as_array() {
                let got: Vec<String> = p.elems().map(hex).collect();
                let want: Vec<String> = hexes
                    .iter()
                    .map(|h| h.as_str().unwrap_or_default().to_owned())
                    .collect();
                check("elems_hex", got, want)?;
            }
            if let Some(elems) = c["elems"].as_array() {
                let got: Vec<Value> = p
                    .elems()
                    .map(|e| std::str::from_utf8(e).map_or(Value::Null, |s| json!(s)))
                    .collect();
                check("elems", &got, elems)?;
            }
            Ok(())
        }
        (Err(e), Some(false)) => check_error(id, &e.message, c),
        (Ok(p), _) => Err(format!("parsed as {p}, want an error")),
        (Err(e), _) => Err(format!("failed: {e}")),
    }
}

fn path_show(c: &Value) -> Result<(), String> {
    let elems: Vec<Vec<u8>> = c["elems_hex"]
        .as_array()
        .ok_or("no elems_hex")?
        .iter()
        .map(|h| unhex(h.as_str().unwrap_or_default()))
        .collect();
    let p = Path::from_elems(&elems).map_err(|e| e.to_string())?;
    check("show", p.show().as_str(), s(c, "canonical"))?;
    if c["roundtrip_parses"].as_bool() == Some(true) {
        check(
            "reparse",
            Path::read(&p.show()).map_err(|e| e.message),
            Ok(p),
        )?;
    }
    Ok(())
}

fn prefix_parse(c: &Value) -> Result<(), String> {
    match (Prefix::read(s(c, "input")), c["ok"].as_bool()) {
        (Ok(p), Some(true)) => {
            check("canonical", p.show().as_str(), s(c, "canonical"))?;
            if let Some(elems) = c["elems"].as_array() {
                let got: Vec<Value> = p
                    .elems()
                    .iter()
                    .map(|e| match e {
                        PrefixElem::Any => json!("*"),
                        PrefixElem::Label(l) => json!(
                            Path::from_elems([l])
                                .map(|p| p.show()[1..].to_owned())
                                .unwrap_or_default()
                        ),
                    })
                    .collect();
                check("elems", &got, elems)?;
            }
            Ok(())
        }
        (Err(e), Some(false)) => check_error(s(c, "id"), &e.message, c),
        (Ok(p), _) => Err(format!("parsed as {}, want an error", p.show())),
        (Err(e), _) => Err(format!("failed: {e}")),
    }
}

fn dtab_parse(c: &Value) -> Result<(), String> {
    let input = s(c, "input");
    let parsed = match s(c, "parser") {
        "Dentry.read" => Dentry::read(input).map(|d| Dtab::new(vec![d])),
        _ => Dtab::read(input),
    };
    match (parsed, c["ok"].as_bool()) {
        (Ok(d), Some(true)) => {
            check("canonical", d.show().as_str(), s(c, "canonical"))?;
            if let Some(n) = c["length"].as_u64() {
                check("length", d.len() as u64, n)?;
            }
            if let Some(ds) = c["dentries"].as_array() {
                let got: Vec<(String, String)> = d
                    .dentries()
                    .iter()
                    .map(|d| (d.prefix.show(), d.dst.show()))
                    .collect();
                let want: Vec<(String, String)> = ds
                    .iter()
                    .map(|d| (s(d, "prefix").to_owned(), s(d, "dst").to_owned()))
                    .collect();
                check("dentries", got, want)?;
            }
            // Printing is canonical: it parses back to the same dtab.
            check(
                "reparse",
                Dtab::read(&d.show()).map_err(|e| e.message),
                Ok(d),
            )
        }
        (Err(e), Some(false)) => check_error(s(c, "id"), &e.message, c),
        (Ok(d), _) => Err(format!("parsed as {d}, want an error")),
        (Err(e), _) => Err(format!("failed: {e}")),
    }
}

/// The corpus's AST notation -> a name tree.
fn ast(v: &Value) -> Result<NameTree<Path>, String> {
    Ok(match v {
        Value::String(t) if t == "~" => NameTree::Neg,
        Value::String(t) if t == "!" => NameTree::Fail,
        Value::String(t) if t == "$" => NameTree::Empty,
        Value::Object(o) if o.contains_key("leaf") => NameTree::Leaf(
            Path::read(o["leaf"].as_str().unwrap_or_default()).map_err(|e| e.message)?,
        ),
        Value::Object(o) if o.contains_key("alt") => NameTree::Alt(
            o["alt"]
                .as_array()
                .ok_or("alt")?
                .iter()
                .map(ast)
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) if o.contains_key("union") => NameTree::Union(
            o["union"]
                .as_array()
                .ok_or("union")?
                .iter()
                .map(|m| {
                    Ok(switchyard::routing::Weighted {
                        weight: m[0].as_f64().ok_or("weight")?,
                        tree: ast(&m[1])?,
                    })
                })
                .collect::<Result<_, String>>()?,
        ),
        other => return Err(format!("bad ast {other}")),
    })
}

fn nametree_parse(c: &Value) -> Result<(), String> {
    match (
        switchyard::routing::parse::parse_tree(s(c, "input")),
        c["ok"].as_bool(),
    ) {
        (Ok(t), Some(true)) => {
            check("canonical", t.show().as_str(), s(c, "canonical"))?;
            if !c["ast"].is_null() {
                check("ast", &t, &ast(&c["ast"])?)?;
            }
            Ok(())
        }
        (Err(e), Some(false)) => check_error(s(c, "id"), &e.message, c),
        (Ok(t), _) => Err(format!("parsed as {}, want an error", t.show())),
        (Err(e), _) => Err(format!("failed: {e}")),
    }
}

fn tree(text: &str) -> Result<NameTree<Path>, String> {
    switchyard::routing::parse::parse_tree(text).map_err(|e| e.message)
}

fn eval_json(t: &NameTree<Path>) -> Value {
    match t.eval() {
        None => Value::Null,
        Some(set) => Value::Array(set.iter().map(|p| json!(p.show())).collect()),
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(a) => {
            let mut items: Vec<String> = a
                .iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect();
            items.sort();
            json!(items)
        }
        other => other.clone(),
    }
}

fn simplify_eval(c: &Value) -> Result<(), String> {
    let t = tree(s(c, "input"))?;
    check("eval", sorted(&eval_json(&t)), sorted(&c["eval"]))?;
    let simplified = t.simplify();
    check("simplified", simplified.show().as_str(), s(c, "simplified"))?;
    check(
        "simplified_eval",
        sorted(&eval_json(&simplified)),
        sorted(&c["simplified_eval"]),
    )
}

fn roundtrip(c: &Value) -> Result<(), String> {
    let want = ast(&c["ast"])?;
    check("show", want.show().as_str(), s(c, "show"))?;
    check("read(show)", tree(s(c, "show"))?, want)
}

fn dtab_ops(c: &Value) -> Result<(), String> {
    let a = Dtab::read(s(c, "a")).map_err(|e| e.message)?;
    let b = Dtab::read(s(c, "b")).map_err(|e| e.message)?;
    let got = match s(c, "op") {
        "++" => a.concat(&b),
        "stripPrefix" => a.strip_prefix(&b),
        op => return Err(format!("unknown op {op}")),
    };
    check("result", got.show().as_str(), s(c, "expected"))
}

// ---- delegation: the mock environment ---------------------------------

fn endpoints(addrs: &Value) -> Addr {
    let eps: Vec<Endpoint> = addrs
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| {
            let (h, p) = a.as_str()?.rsplit_once(':')?;
            Some(Endpoint::new(h, p.parse().ok()?))
        })
        .collect();
    Addr::Bound(Arc::from(eps))
}

fn bound(id: Path, residual: Path, addr: Addr) -> Lookup<NameTree<Name>> {
    Lookup::Ok(NameTree::Leaf(Name::bound(id, residual, addr)))
}

fn path_tree(text: &str) -> Lookup<NameTree<Name>> {
    match tree(text) {
        Ok(t) => Lookup::Ok(t.map(&mut |p: &Path| Name::Path(p.clone()))),
        Err(e) => Lookup::Failed(BindError::Namer(e.into())),
    }
}

/// One `env.exact` entry.
fn exact_entry(path: &Path, v: &Value) -> Lookup<NameTree<Name>> {
    match v {
        Value::String(p) if p == "pending" => Lookup::Pending,
        Value::String(t) => path_tree(t),
        Value::Object(o) if o.contains_key("failed") => Lookup::Failed(BindError::Namer(
            o["failed"].as_str().unwrap_or_default().into(),
        )),
        Value::Object(o) if o.contains_key("bound") => {
            bound(path.clone(), Path::empty(), endpoints(&o["bound"]))
        }
        _ => Lookup::Failed(BindError::Namer(format!("bad env entry {v}").into())),
    }
}

struct MockNamer {
    prefix: Path,
    kind: String,
    spec: Value,
}

impl Namer for MockNamer {
    fn lookup(&self, rest: &Path) -> Lookup<NameTree<Name>> {
        let full = self.prefix.concat(rest);
        match self.kind.as_str() {
            "service" => {
                let Some(svc) = rest.elem(0) else {
                    return Lookup::Ok(NameTree::Neg);
                };
                let svc = String::from_utf8_lossy(svc);
                match self.spec["services"].get(svc.as_ref()) {
                    Some(addrs) => bound(
                        self.prefix.concat(&rest.take(1)),
                        rest.drop_front(1),
                        endpoints(addrs),
                    ),
                    None => Lookup::Ok(NameTree::Neg),
                }
            }
            "catchall_pending" => Lookup::Pending,
            "error" => Lookup::Failed(BindError::Namer(format!("error naming {full}").into())),
            "tree" => match self.spec["map"].get(rest.show()) {
                Some(v) => exact_entry(&full, v),
                None => Lookup::Ok(NameTree::Neg),
            },
            "ipport" => match (rest.elem(0), rest.elem(1)) {
                (Some(h), Some(p)) => {
                    let addr = json!([format!(
                        "{}:{}",
                        String::from_utf8_lossy(h),
                        String::from_utf8_lossy(p)
                    )]);
                    bound(
                        self.prefix.concat(&rest.take(2)),
                        rest.drop_front(2),
                        endpoints(&addr),
                    )
                }
                _ => Lookup::Ok(NameTree::Neg),
            },
            other => Lookup::Failed(BindError::Namer(
                format!("unknown mock kind {other}").into(),
            )),
        }
    }
}

/// `env.exact` and `env.default` (NamerTest's `OrElse(pathNamer,
/// Namer.global)`), then `env.namers` in order.
struct MockNamers {
    exact: BTreeMap<String, Value>,
    default_pending: bool,
    mounts: Vec<MockNamer>,
}

impl NamerSet for MockNamers {
    fn lookup(&self, path: &Path) -> Lookup<NameTree<Name>> {
        if let Some(v) = self.exact.get(&path.show()) {
            return exact_entry(path, v);
        }
        for m in &self.mounts {
            if path.starts_with(&m.prefix) {
                match m.lookup(&path.drop_front(m.prefix.len())) {
                    Lookup::Ok(NameTree::Neg) => continue,
                    other => return other,
                }
            }
        }
        if self.default_pending && path.elem(0) != Some(b"$") {
            return Lookup::Pending;
        }
        Lookup::Ok(NameTree::Neg)
    }
}

/// A `/$/<class>` namer with a fixed table (`env.classes`).
struct ClassNamer {
    class: String,
    exact_bound: Value,
}

impl Namer for ClassNamer {
    fn lookup(&self, rest: &Path) -> Lookup<NameTree<Name>> {
        match self.exact_bound.get(rest.show()) {
            Some(addrs) => {
                let mut id = Path::from_elems(["$", self.class.as_str()]).expect("non-empty");
                id.append(rest);
                bound(id, Path::empty(), endpoints(addrs))
            }
            None => Lookup::Ok(NameTree::Neg),
        }
    }
}

/// Finagle's test namer classes, loaded by name in its tests.
struct Rewrite(&'static str, Option<&'static str>);

impl Namer for Rewrite {
    fn lookup(&self, rest: &Path) -> Lookup<NameTree<Name>> {
        match self.1 {
            Some(only) if rest.show() != only => Lookup::Ok(NameTree::Neg),
            _ => path_tree(self.0),
        }
    }
}

fn env_of(c: &Value) -> (MockNamers, GlobalNamer) {
    let env = &c["env"];
    let exact = env["exact"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mounts = env["namers"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|n| MockNamer {
            prefix: Path::read(s(n, "prefix")).expect("mock prefix"),
            kind: s(n, "kind").to_owned(),
            spec: n.clone(),
        })
        .collect();
    let mut global = GlobalNamer::new()
        // finagle-core's TestNamer maps /foo to /bar; naming's testnamer
        // rewrites anything to /rewritten/by/test/namer.
        .with_class(
            "com.twitter.finagle.TestNamer",
            Box::new(Rewrite("/bar", Some("/foo"))),
        )
        .with_class(
            "com.twitter.finagle.naming.testnamer",
            Box::new(Rewrite("/rewritten/by/test/namer", None)),
        );
    if let Some(classes) = env["classes"].as_object() {
        for (name, spec) in classes {
            global = global.with_class(
                name,
                Box::new(ClassNamer {
                    class: name.clone(),
                    exact_bound: spec["exact_bound"].clone(),
                }),
            );
        }
    }
    let namers = MockNamers {
        exact,
        default_pending: s(env, "default") == "pending",
        mounts,
    };
    (namers, global)
}

fn addr_strings(a: &Addr) -> (String, BTreeSet<String>) {
    match a {
        Addr::Bound(eps) => ("bound".into(), eps.iter().map(|e| e.to_string()).collect()),
        Addr::Pending => ("pending".into(), BTreeSet::new()),
        Addr::Failed(_) => ("failed".into(), BTreeSet::new()),
    }
}

fn check_leaves(
    got: Vec<(Option<&Bound>, Option<&Path>, Option<f64>)>,
    want: &Value,
) -> Result<(), String> {
    let want = want.as_array().ok_or("leaves")?;
    check("leaf count", got.len(), want.len())?;
    for ((b, unbound, weight), w) in got.into_iter().zip(want) {
        if let Some(p) = w["unbound_path"].as_str() {
            check(
                "unbound leaf",
                unbound.map(|p| p.show()),
                Some(p.to_owned()),
            )?;
            continue;
        }
        let b = b.ok_or("expected a bound leaf")?;
        check("leaf id", b.id.show().as_str(), s(w, "id"))?;
        check(
            "leaf residual",
            b.residual.show().as_str(),
            s(w, "residual"),
        )?;
        let (state, addrs) = addr_strings(&b.addr);
        check("addr state", state.as_str(), s(&w["addr"], "state"))?;
        let want_addrs: BTreeSet<String> = w["addr"]["addrs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        check("addrs", addrs, want_addrs)?;
        check(
            "weight metadata",
            weight,
            w["addr_weight_metadata"].as_f64(),
        )?;
    }
    Ok(())
}

fn bound_leaves(t: &BoundTree) -> Vec<(Option<&Bound>, Option<&Path>, Option<f64>)> {
    let mut v = Vec::new();
    t.for_each_leaf(&mut |l| v.push((Some(&l.bound), None, l.weight)));
    v
}

fn delegate(c: &Value) -> Result<(), String> {
    let id = s(c, "id");
    let (base, local) = match c.get("dtab") {
        Some(d) => (d.as_str().unwrap_or_default(), ""),
        None => (s(c, "base_dtab"), s(c, "local_dtab")),
    };
    let base = Dtab::read(base).map_err(|e| e.message)?;
    let local = Dtab::read(local).map_err(|e| e.message)?;
    if let Some(eff) = c["effective_dtab"].as_str() {
        check("effective dtab", base.concat(&local).show().as_str(), eff)?;
    }
    let path = Path::read(s(c, "path")).map_err(|e| e.message)?;
    let (namers, global) = env_of(c);
    match s(c, "stage") {
        "lookup" => check(
            "lookup",
            base.concat(&local).lookup(&path).show().as_str(),
            s(c, "expected"),
        ),
        "namer_lookup" => {
            let got = global.lookup(&path);
            match (got, s(c, "state")) {
                (Lookup::Ok(t), "ok") => {
                    let shown = t.map(&mut |n: &Name| match n {
                        Name::Path(p) => p.clone(),
                        Name::Bound(b) => b.id.clone(),
                    });
                    check("tree", shown.show().as_str(), s(c, "expected"))?;
                    let mut leaves = Vec::new();
                    t.for_each_leaf(&mut |n| match n {
                        Name::Bound(b) => leaves.push((Some(&**b), None, None)),
                        Name::Path(p) => leaves.push((None, Some(p), None)),
                    });
                    if !c["leaves"].is_null() {
                        check_leaves(leaves, &c["leaves"])?;
                    }
                    Ok(())
                }
                (Lookup::Failed(e), "failed") => check_error(id, &e.to_string(), c),
                (Lookup::Pending, "pending") => Ok(()),
                (got, want) => Err(format!("state: got {got:?}, want {want}")),
            }
        }
        "bind" => {
            let compiled = CompiledDtab::new(base);
            let interp = Interpreter {
                base: &compiled,
                local: &local,
                namers: &namers,
                global: &global,
                max_depth: c["max_depth"].as_u64().map_or(100, |d| d as usize),
                max_lookups: switchyard::limits::BIND_LOOKUPS_MAX,
            };
            let mut trace = Vec::new();
            let got = interp.bind_traced(&path, &mut trace);
            if let Some(want) = c["trace"].as_array() {
                let got: Vec<String> = trace.iter().map(|p| p.show()).collect();
                let want: Vec<String> = want
                    .iter()
                    .map(|p| p.as_str().unwrap_or_default().to_owned())
                    .collect();
                check("trace", got, want)?;
            }
            match (got, s(c, "state")) {
                (Lookup::Ok(t), "ok") => {
                    check("tree", t.show().as_str(), s(c, "expected"))?;
                    if !c["leaves"].is_null() {
                        check_leaves(bound_leaves(&t), &c["leaves"])?;
                    }
                    if c.get("eval").is_some() {
                        let ids = t.map(&mut |l| l.bound.id.clone());
                        check("eval", sorted(&eval_json(&ids)), sorted(&c["eval"]))?;
                    }
                    if let Some(want) = c["eval_addrs"].as_array() {
                        let mut got = BTreeSet::new();
                        t.for_each_leaf(&mut |l| got.extend(addr_strings(&l.bound.addr).1));
                        let want: BTreeSet<String> = want
                            .iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect();
                        check("eval_addrs", got, want)?;
                    }
                    Ok(())
                }
                (Lookup::Failed(e), "failed") => check_error(id, &e.to_string(), c),
                (Lookup::Pending, "pending") => Ok(()),
                (got, want) => Err(format!("state: got {got:?}, want {want}")),
            }
        }
        other => Err(format!("unknown stage {other}")),
    }
}

/// The corpus's compact DelegateTree notation.
fn compact(t: &DelegateTree<Bound>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), json!(t.node.kind()));
    m.insert("path".into(), json!(t.path.show()));
    m.insert(
        "dentry".into(),
        t.dentry.as_ref().map_or(Value::Null, |d| json!(d.show())),
    );
    match &t.node {
        Node::Exception(msg) => {
            m.insert("message".into(), json!(msg));
        }
        Node::Delegate(d) => {
            m.insert("delegate".into(), compact(d));
        }
        Node::Alt(ts) => {
            m.insert("alt".into(), Value::Array(ts.iter().map(compact).collect()));
        }
        Node::Union(ws) => {
            m.insert(
                "union".into(),
                Value::Array(
                    ws.iter()
                        .map(|(w, t)| json!({"weight": w, "tree": compact(t)}))
                        .collect(),
                ),
            );
        }
        Node::Leaf(b) => {
            let (state, addrs) = addr_strings(&b.addr);
            m.insert(
                "bound".into(),
                json!({"id": b.id.show(), "residual": b.residual.show(), "addr": {"state": state, "addrs": addrs}}),
            );
        }
        _ => {}
    }
    Value::Object(m)
}

/// Compares compact trees; an exception message matches when the corpus's
/// `Class: message` ends with ours.
fn same_compact(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len()
                && w.iter().all(|(k, wv)| match (k.as_str(), g.get(k)) {
                    ("message", Some(Value::String(gm))) => {
                        wv.as_str().is_some_and(|wm| wm.ends_with(gm.as_str()))
                    }
                    (_, Some(gv)) => same_compact(gv, wv),
                    (_, None) => false,
                })
        }
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same_compact(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn explain(c: &Value) -> Result<(), String> {
    let dtab = Dtab::read(s(c, "dtab")).map_err(|e| e.message)?;
    let path = Path::read(s(c, "path")).map_err(|e| e.message)?;
    let (namers, global) = env_of(c);
    let compiled = CompiledDtab::new(dtab);
    let empty = Dtab::empty();
    let interp = Interpreter {
        base: &compiled,
        local: &empty,
        namers: &namers,
        global: &global,
        max_depth: 100,
        max_lookups: switchyard::limits::BIND_LOOKUPS_MAX,
    };
    let t = interp.explain(&path).map_err(|e| e.to_string())?;
    let got = compact(&t);
    if !same_compact(&got, &c["expected"]) {
        return Err(format!("tree:\n got  {got}\n want {}", c["expected"]));
    }
    if let Some(want) = c["expected_admin_json"].as_str() {
        check("admin JSON", t.to_json().to_string().as_str(), want)?;
    }
    Ok(())
}

fn headers(c: &Value) -> Result<(), String> {
    let hs: Vec<(String, String)> = c["headers"]
        .as_array()
        .ok_or("headers")?
        .iter()
        .map(|h| {
            (
                s(&h[0], "").to_owned(),
                h[0].as_str().unwrap_or_default().to_owned(),
            )
        })
        .zip(
            c["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| h[1].as_str().unwrap_or_default().to_owned()),
        )
        .map(|((_, n), v)| (n, v))
        .collect();
    let values = |name: &str| -> Vec<&[u8]> {
        hs.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
            .collect()
    };
    let result = local_dtab(values("l5d-ctx-dtab"), values("l5d-dtab"));
    if let Some(status) = c["expected_status"].as_u64() {
        // A malformed override is a 400 on a mesh listener.
        return match result {
            Err(_) if status == 400 => Ok(()),
            other => Err(format!("want status {status}, local dtab {other:?}")),
        };
    }
    let local = result.map_err(|e| e.message)?;
    if let Some(want) = c["expected_local_dtab"].as_str() {
        check("local dtab", local.show().as_str(), want)?;
    }
    if let Some(want) = c["expected_downstream_headers"]["l5d-ctx-dtab"].as_str() {
        // Downstream, l5d-ctx-dtab carries the merged local dtab, printed
        // canonically.
        check("l5d-ctx-dtab", local.show().as_str(), want)?;
    }
    Ok(())
}

struct Req {
    method: String,
    target: String,
    minor: u8,
    headers: Vec<(String, String)>,
}

impl RequestHead for Req {
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }
    fn target(&self) -> &[u8] {
        self.target.as_bytes()
    }
    fn minor_version(&self) -> u8 {
        self.minor
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
}

fn identify(c: &Value) -> Result<(), String> {
    let idc = &c["identifier"];
    let kind = match s(idc, "kind") {
        "io.l5d.header.token" => IdentifierKind::HeaderToken {
            header: idc["header"].as_str().unwrap_or("Host").to_owned(),
        },
        "io.l5d.header" => IdentifierKind::Header {
            header: idc["header"].as_str().unwrap_or("l5d-name").to_owned(),
        },
        "io.l5d.methodAndHost" => IdentifierKind::MethodAndHost {
            http_uri_in_dst: idc["httpUriInDst"].as_bool().unwrap_or(false),
        },
        "io.l5d.path" => IdentifierKind::Path {
            segments: idc["segments"].as_u64().unwrap_or(1) as usize,
            consume: idc["consume"].as_bool().unwrap_or(false),
        },
        "io.l5d.static" => IdentifierKind::Static {
            path: Path::read(s(idc, "path")).map_err(|e| e.message)?,
        },
        k => return Err(format!("unknown identifier {k}")),
    };
    let identifier = Identifier {
        kind,
        dst_prefix: Path::read(idc["dstPrefix"].as_str().unwrap_or("/svc"))
            .map_err(|e| e.message)?,
    };
    let r = &c["request"];
    let mut headers: Vec<(String, String)> = r["headers"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap_or_default().to_owned(),
                h[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    if let Some(h) = r["host"].as_str() {
        headers.push(("Host".into(), h.into()));
    }
    let req = Req {
        method: r["method"].as_str().unwrap_or("GET").to_owned(),
        target: r["uri"].as_str().unwrap_or("/").to_owned(),
        minor: if r["version"].as_str() == Some("HTTP/1.0") {
            0
        } else {
            1
        },
        headers,
    };
    let e = &c["expected"];
    match identifier.identify(&req) {
        Identified::Unidentified(why) => check(
            "unidentified",
            true,
            e["unidentified"].as_bool() == Some(true),
        )
        .map_err(|m| format!("{m} ({why})")),
        Identified::Dst { name, consume_from } => {
            check("dst", name.show().as_str(), s(e, "dst"))?;
            if let Some(elems) = e["dst_elems"].as_array() {
                let got: Vec<String> = name
                    .elems()
                    .map(|x| String::from_utf8_lossy(x).into_owned())
                    .collect();
                let want: Vec<String> = elems
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect();
                check("dst_elems", got, want)?;
            }
            if let Some(want) = e["forwarded_uri"].as_str() {
                let fwd = match consume_from {
                    Some(at) => consumed_target(req.target.as_bytes(), at),
                    None => req.target.as_bytes().to_vec(),
                };
                check(
                    "forwarded_uri",
                    String::from_utf8_lossy(&fwd).as_ref(),
                    want,
                )?;
            }
            Ok(())
        }
    }
}
