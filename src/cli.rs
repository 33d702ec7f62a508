//! The `switchyard dtab ...` commands, for people debugging routing. Each
//! returns its output and exit status so the binary stays a thin shell.

use crate::limits::NAMER_MAX_DEPTH_DEFAULT;
use crate::routing::{
    Addr, CompiledDtab, Dtab, Endpoint, GlobalNamer, Interpreter, Lookup, Path, StaticNamers,
    explain,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// What a command prints and how it exits.
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }

    /// Bad input: exit 2, as for any usage error.
    fn bad_input(stderr: String) -> Outcome {
        Outcome {
            stdout: String::new(),
            stderr,
            code: 2,
        }
    }
}

/// `dtab parse`: the canonical form, or the error with its position.
pub fn parse(dtab: &str) -> Outcome {
    match Dtab::read(dtab) {
        Ok(d) => Outcome::ok(format!("{}\n", d.show())),
        Err(e) => Outcome::bad_input(format!(
            "invalid dtab at character {}: {}\n",
            e.position, e.message
        )),
    }
}

/// `dtab lookup`: the tree of one lookup step.
pub fn lookup(dtab: &str, path: &str) -> Outcome {
    let (dtab, path) = match (read_dtab("--dtab", dtab), read_path(path)) {
        (Ok(d), Ok(p)) => (d, p),
        (Err(e), _) | (_, Err(e)) => return Outcome::bad_input(e),
    };
    Outcome::ok(format!("{}\n", dtab.lookup(&path).show()))
}

/// Inputs shared by `bind` and `explain`.
pub struct BindArgs<'a> {
    pub dtab: &'a str,
    pub local: Option<&'a str>,
    pub endpoints: Option<&'a str>,
    pub max_depth: Option<usize>,
    pub path: &'a str,
}

struct Prepared {
    base: CompiledDtab,
    local: Dtab,
    namers: StaticNamers,
    path: Path,
    max_depth: usize,
}

impl Prepared {
    /// The interpreter `bind` and `explain` share: base, local and namers
    /// as given, with the proxy's lookup bound.
    fn interpreter<'a>(&'a self, global: &'a GlobalNamer) -> Interpreter<'a> {
        Interpreter {
            base: &self.base,
            local: &self.local,
            namers: &self.namers,
            global,
            max_depth: self.max_depth,
            max_lookups: crate::limits::BIND_LOOKUPS_MAX,
        }
    }
}

fn prepare(a: &BindArgs<'_>) -> Result<Prepared, String> {
    let base = CompiledDtab::new(read_dtab("--dtab", a.dtab)?);
    let local = match a.local {
        Some(l) => read_dtab("--local", l)?,
        None => Dtab::empty(),
    };
    let namers = match a.endpoints {
        Some(file) => read_endpoints(file)?,
        None => StaticNamers::new(),
    };
    Ok(Prepared {
        base,
        local,
        namers,
        path: read_path(a.path)?,
        max_depth: a.max_depth.unwrap_or(NAMER_MAX_DEPTH_DEFAULT),
    })
}

/// `dtab bind`: JSON with `state`, `tree`, `addresses` and `error`.
pub fn bind(a: &BindArgs<'_>) -> Outcome {
    let p = match prepare(a) {
        Ok(p) => p,
        Err(e) => return Outcome::bad_input(e),
    };
    let global = GlobalNamer::new();
    let out = bind_json(&p.path, &p.interpreter(&global).bind(&p.path));
    Outcome::ok(format!("{}\n", pretty(&out)))
}

/// The JSON `switchyard dtab bind` prints for a bind result.
pub fn bind_json(path: &Path, result: &Lookup<crate::routing::BoundTree>) -> Value {
    match result {
        Lookup::Ok(tree) => {
            let mut addresses = Vec::new();
            tree.for_each_leaf(&mut |leaf| {
                let b = &leaf.bound;
                match &b.addr {
                    Addr::Bound(eps) => {
                        for e in eps.iter() {
                            addresses.push(json!({
                                "id": b.id.show(),
                                "residual": b.residual.show(),
                                "address": e.to_string(),
                                "weight": leaf.weight,
                            }));
                        }
                    }
                    other => addresses.push(json!({
                        "id": b.id.show(),
                        "residual": b.residual.show(),
                        "address": null,
                        "weight": leaf.weight,
                        "addr": explain::addr_json(other),
                    })),
                }
            });
            json!({"path": path.show(), "state": "ok", "tree": tree.show(), "addresses": addresses})
        }
        Lookup::Pending => {
            json!({"path": path.show(), "state": "pending", "tree": null, "addresses": []})
        }
        Lookup::Failed(e) => json!({
            "path": path.show(), "state": "failed", "tree": null, "addresses": [], "error": e.to_string(),
        }),
    }
}

/// `dtab explain`: the delegation tree JSON, as `/delegator.json` returns it.
pub fn explain(a: &BindArgs<'_>) -> Outcome {
    let p = match prepare(a) {
        Ok(p) => p,
        Err(e) => return Outcome::bad_input(e),
    };
    // linkerd's explainer binds with the dtab it is given: base ++ local.
    let global = GlobalNamer::new();
    match p.interpreter(&global).explain(&p.path) {
        Ok(t) => Outcome::ok(format!("{}\n", pretty(&t.to_json()))),
        Err(e) => Outcome {
            stdout: String::new(),
            stderr: format!("delegation failed: {e}\n"),
            code: 1,
        },
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn read_dtab(flag: &str, s: &str) -> Result<Dtab, String> {
    Dtab::read(s).map_err(|e| {
        format!(
            "invalid {flag} at character {}: {}\n",
            e.position, e.message
        )
    })
}

fn read_path(s: &str) -> Result<Path, String> {
    Path::read(s).map_err(|e| format!("invalid path at character {}: {}\n", e.position, e.message))
}

/// Reads an endpoints file: a JSON object from bound ids to arrays of
/// `host:port` strings (or the string `"pending"`).
fn read_endpoints(file: &str) -> Result<StaticNamers, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read --endpoints {file}: {e}\n"))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("--endpoints {file}: not JSON: {e}\n"))?;
    let Value::Object(map) = v else {
        return Err(format!(
            "--endpoints {file}: expected an object of id -> [\"host:port\", ...]\n"
        ));
    };
    let mut namers = StaticNamers::new();
    for (id, addrs) in map {
        let path = Path::read(&id)
            .map_err(|e| format!("--endpoints {file}: key {id:?}: {}\n", e.message))?;
        let addr = match addrs {
            Value::String(s) if s == "pending" => Addr::Pending,
            Value::Array(items) => {
                let mut eps = Vec::with_capacity(items.len());
                for item in items {
                    let s = item.as_str().unwrap_or_default();
                    eps.push(parse_host_port(s).ok_or_else(|| {
                        format!("--endpoints {file}: key {id:?}: {item} is not \"host:port\"\n")
                    })?);
                }
                Addr::Bound(Arc::from(eps))
            }
            other => {
                return Err(format!(
                    "--endpoints {file}: key {id:?}: expected an array of \"host:port\" or \"pending\", got {other}\n"
                ));
            }
        };
        namers.insert(path, addr);
    }
    Ok(namers)
}

/// `host:port` or `[v6]:port`.
pub fn parse_host_port(s: &str) -> Option<Endpoint> {
    let (host, port) = s.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None => host,
    };
    Some(Endpoint::new(host, port.parse().ok()?))
}
