//! The delegation explainer: every branch of a delegation, with the dentry
//! that produced each step, for the admin API's `/delegator.json`, the
//! playground and `switchyard dtab explain`.
//!
//! It follows linkerd's `ConfiguredNamersInterpreter.delegate` and
//! `DelegateTree.simplified`: unlike [`Interpreter::bind`] it binds *every*
//! alternative, so fallbacks that would not be reached are shown too, and a
//! failing branch becomes an `exception` node instead of failing the whole
//! answer. The JSON is linkerd's `JsonDelegateTree` shape.

use super::bind::{Interpreter, STACK_GROWTH, STACK_RED_ZONE};
use super::dtab::Dentry;
use super::namer::{Addr, BindError, Bound, Lookup, Name};
use super::nametree::NameTree;
use super::path::Path;
use super::trie::Matches;
use crate::limits::EXPLAIN_LOOKUPS_MAX;
use serde_json::{Map, Value, json};

/// One node of the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegateTree<L> {
    /// The path at this step.
    pub path: Path,
    /// The dentry that produced this step; `None` at the root.
    pub dentry: Option<Dentry>,
    pub node: Node<L>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node<L> {
    /// A lookup failed (a namer error, an unknown `/$/` class, a loop).
    Exception(String),
    Empty,
    Fail,
    Neg,
    /// A namer has not synced this name yet. linkerd's page would wait and
    /// time out; we say so at once.
    Pending,
    Delegate(Box<DelegateTree<L>>),
    Leaf(L),
    Alt(Vec<DelegateTree<L>>),
    Union(Vec<(f64, DelegateTree<L>)>),
}

impl<L> Node<L> {
    /// The node's `type` in linkerd's delegator JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Exception(_) => "exception",
            Node::Empty => "empty",
            Node::Fail => "fail",
            Node::Neg => "neg",
            Node::Pending => "pending",
            Node::Delegate(_) => "delegate",
            Node::Leaf(_) => "leaf",
            Node::Alt(_) => "alt",
            Node::Union(_) => "union",
        }
    }
}

impl<L> DelegateTree<L> {
    fn new(path: Path, dentry: Option<Dentry>, node: Node<L>) -> Self {
        DelegateTree { path, dentry, node }
    }
}

/// `DelegateTree.fromNameTree`: a tree produced by one step, every node
/// carrying that step's path and dentry; an explicit `~` gets the empty path.
fn from_name_tree(path: &Path, dentry: &Option<Dentry>, t: NameTree<Name>) -> DelegateTree<Name> {
    let node = match t {
        NameTree::Empty => Node::Empty,
        NameTree::Fail => Node::Fail,
        NameTree::Neg => return DelegateTree::new(Path::empty(), dentry.clone(), Node::Neg),
        NameTree::Leaf(n) => Node::Leaf(n),
        NameTree::Alt(ts) => Node::Alt(
            ts.into_iter()
                .map(|t| from_name_tree(path, dentry, t))
                .collect(),
        ),
        NameTree::Union(ws) => Node::Union(
            ws.into_iter()
                .map(|w| (w.weight, from_name_tree(path, dentry, w.tree)))
                .collect(),
        ),
    };
    DelegateTree::new(path.clone(), dentry.clone(), node)
}

impl Interpreter<'_> {
    /// Explains how `path` delegates. Fails only when the depth limit is hit
    /// outside any alternative or union (inside one, the failing branch
    /// becomes an `exception` node).
    pub fn explain(&self, path: &Path) -> Result<DelegateTree<Bound>, BindError> {
        let root = DelegateTree::new(path.clone(), None, Node::Leaf(Name::Path(path.clone())));
        let mut cx = ExplainCx {
            scratch: Matches::new(),
            lookups: 0,
        };
        let tree = self.delegate_bind(root, 0, &mut cx)?;
        // Alternatives turn failures into exception nodes; running out of
        // budget fails the whole explanation instead.
        if cx.lookups > EXPLAIN_LOOKUPS_MAX {
            return Err(BindError::TooManyLookups {
                max: EXPLAIN_LOOKUPS_MAX,
            });
        }
        Ok(simplify(tree))
    }

    fn delegate_lookup(
        &self,
        dentry: Option<Dentry>,
        path: Path,
        cx: &mut ExplainCx,
    ) -> DelegateTree<Name> {
        let mut trees: Vec<DelegateTree<Name>> = self
            .matching(&path, &mut cx.scratch)
            .into_iter()
            .map(|(_, d)| {
                let residual_from = d.prefix.len();
                let t = d.dst.map(&mut |p: &Path| {
                    let mut out = p.clone();
                    path.append_suffix_to(residual_from, &mut out);
                    Name::Path(out)
                });
                from_name_tree(&path, &Some(d.clone()), t)
            })
            .collect();
        match trees.len() {
            0 => {
                // The dtab has nothing: ask the namers.
                let looked_up = match self.namers.lookup(&path) {
                    Lookup::Ok(NameTree::Neg) => self.global.lookup(&path),
                    other => other,
                };
                match looked_up {
                    Lookup::Ok(NameTree::Neg) => DelegateTree::new(path, dentry, Node::Neg),
                    Lookup::Ok(t) => from_name_tree(&path, &dentry, t),
                    Lookup::Pending => DelegateTree::new(path, dentry, Node::Pending),
                    Lookup::Failed(e) => {
                        DelegateTree::new(path, dentry, Node::Exception(e.to_string()))
                    }
                }
            }
            1 => {
                let t = trees.pop().map(Box::new);
                match t {
                    Some(t) => DelegateTree::new(path, dentry, Node::Delegate(t)),
                    None => DelegateTree::new(path, dentry, Node::Neg),
                }
            }
            _ => DelegateTree::new(path, dentry, Node::Alt(trees)),
        }
    }

    fn delegate_bind(
        &self,
        t: DelegateTree<Name>,
        depth: usize,
        cx: &mut ExplainCx,
    ) -> Result<DelegateTree<Bound>, BindError> {
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || {
            self.delegate_bind_inner(t, depth, cx)
        })
    }

    fn delegate_bind_inner(
        &self,
        t: DelegateTree<Name>,
        depth: usize,
        cx: &mut ExplainCx,
    ) -> Result<DelegateTree<Bound>, BindError> {
        if depth > self.max_depth {
            return Err(BindError::MaxDepth {
                max: self.max_depth,
            });
        }
        cx.lookups += 1;
        if cx.lookups > EXPLAIN_LOOKUPS_MAX {
            return Err(BindError::TooManyLookups {
                max: EXPLAIN_LOOKUPS_MAX,
            });
        }
        let DelegateTree { path, dentry, node } = t;
        let node = match node {
            Node::Exception(m) => Node::Exception(m),
            Node::Empty => Node::Empty,
            Node::Fail => Node::Fail,
            Node::Neg => Node::Neg,
            Node::Pending => Node::Pending,
            Node::Leaf(Name::Bound(b)) => Node::Leaf(*b),
            Node::Leaf(Name::Path(p)) => {
                let looked_up = self.delegate_lookup(dentry, p, cx);
                return self.delegate_bind(looked_up, depth + 1, cx);
            }
            Node::Delegate(t) => Node::Delegate(Box::new(self.delegate_bind(*t, depth, cx)?)),
            Node::Alt(mut ts) => match ts.len() {
                0 => Node::Neg,
                1 => match ts.pop() {
                    Some(t) => Node::Delegate(Box::new(self.delegate_bind(t, depth, cx)?)),
                    None => Node::Neg,
                },
                _ => Node::Alt(
                    ts.into_iter()
                        .map(|t| {
                            self.delegate_bind(t, depth, cx).unwrap_or_else(|e| {
                                DelegateTree::new(
                                    path.clone(),
                                    dentry.clone(),
                                    Node::Exception(e.to_string()),
                                )
                            })
                        })
                        .collect(),
                ),
            },
            Node::Union(mut ws) => match ws.len() {
                0 => Node::Neg,
                1 => match ws.pop() {
                    Some((_, t)) => Node::Delegate(Box::new(self.delegate_bind(t, depth, cx)?)),
                    None => Node::Neg,
                },
                _ => Node::Union(
                    ws.into_iter()
                        .map(|(w, t)| {
                            let b = self.delegate_bind(t, depth, cx).unwrap_or_else(|e| {
                                DelegateTree::new(
                                    path.clone(),
                                    dentry.clone(),
                                    Node::Exception(e.to_string()),
                                )
                            });
                            (w, b)
                        })
                        .collect(),
                ),
            },
        };
        Ok(DelegateTree::new(path, dentry, node))
    }
}

struct ExplainCx {
    scratch: Matches,
    /// Nodes visited so far, for the budget.
    lookups: usize,
}

/// `DelegateTree.simplified`: a Delegate whose child has the same path
/// collapses into the child (taking the Delegate's dentry) unless the child
/// is Neg, Fail or Empty; an Alt flattens child Alts with its own path;
/// empty Alts and Unions become Neg, one-child ones a Delegate.
pub fn simplify<L>(t: DelegateTree<L>) -> DelegateTree<L> {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || simplify_inner(t))
}

fn simplify_inner<L>(t: DelegateTree<L>) -> DelegateTree<L> {
    let DelegateTree { path, dentry, node } = t;
    match node {
        Node::Delegate(child) => {
            let child = simplify(*child);
            let collapse =
                !matches!(child.node, Node::Neg | Node::Fail | Node::Empty) && child.path == path;
            if collapse {
                DelegateTree { dentry, ..child }
            } else {
                DelegateTree::new(path, dentry, Node::Delegate(Box::new(child)))
            }
        }
        Node::Alt(mut ts) => match ts.len() {
            0 => DelegateTree::new(path, dentry, Node::Neg),
            1 => match ts.pop() {
                Some(t) => simplify(DelegateTree::new(path, dentry, Node::Delegate(Box::new(t)))),
                None => DelegateTree::new(path, dentry, Node::Neg),
            },
            _ => {
                let mut out = Vec::with_capacity(ts.len());
                for t in ts {
                    let s = simplify(t);
                    if s.path == path {
                        if let Node::Alt(inner) = s.node {
                            out.extend(inner);
                            continue;
                        }
                        out.push(s);
                    } else {
                        out.push(s);
                    }
                }
                DelegateTree::new(path, dentry, Node::Alt(out))
            }
        },
        Node::Union(mut ws) => match ws.len() {
            0 => DelegateTree::new(path, dentry, Node::Neg),
            1 => match ws.pop() {
                Some((_, t)) => {
                    simplify(DelegateTree::new(path, dentry, Node::Delegate(Box::new(t))))
                }
                None => DelegateTree::new(path, dentry, Node::Neg),
            },
            _ => DelegateTree::new(
                path,
                dentry,
                Node::Union(ws.into_iter().map(|(w, t)| (w, simplify(t))).collect()),
            ),
        },
        node => DelegateTree::new(path, dentry, node),
    }
}

impl DelegateTree<Bound> {
    /// linkerd's `/delegator.json` shape: `type`, `path`, `dentry` (absent
    /// at the root) and the node's own fields.
    pub fn to_json(&self) -> Value {
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || self.to_json_inner())
    }

    fn to_json_inner(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), self.node.kind().into());
        let path = match &self.node {
            Node::Neg if self.path.is_empty() => "~".to_owned(),
            Node::Fail if !self.path.starts_with(&fail_path()) => "!".to_owned(),
            _ => self.path.show(),
        };
        m.insert("path".into(), path.into());
        if let Some(d) = &self.dentry {
            m.insert(
                "dentry".into(),
                json!({"prefix": d.prefix.show(), "dst": d.dst.show()}),
            );
        }
        match &self.node {
            Node::Exception(msg) => {
                m.insert("message".into(), msg.as_str().into());
            }
            Node::Delegate(t) => {
                m.insert("delegate".into(), t.to_json());
            }
            Node::Leaf(b) => {
                m.insert("bound".into(), bound_json(b));
            }
            Node::Alt(ts) => {
                m.insert("alt".into(), ts.iter().map(|t| t.to_json()).collect());
            }
            Node::Union(ws) => {
                m.insert(
                    "union".into(),
                    ws.iter()
                        .map(|(w, t)| json!({"weight": w, "tree": t.to_json()}))
                        .collect(),
                );
            }
            Node::Empty | Node::Fail | Node::Neg | Node::Pending => {}
        }
        Value::Object(m)
    }
}

fn fail_path() -> Path {
    let mut p = Path::empty();
    p.push_nonempty(b"$");
    p.push_nonempty(b"fail");
    p
}

/// A bound name as linkerd's admin API shows it: `addr`, `id`, `path` (the
/// residual).
pub fn bound_json(b: &Bound) -> Value {
    json!({"addr": addr_json(&b.addr), "id": b.id.show(), "path": b.residual.show()})
}

/// An address set as linkerd's admin API shows it.
pub fn addr_json(a: &Addr) -> Value {
    match a {
        Addr::Bound(eps) => {
            let addrs: Vec<Value> = eps
                .iter()
                .map(|e| {
                    let mut meta = Map::new();
                    if let Some(n) = &e.node {
                        meta.insert("nodeName".into(), n.as_ref().into());
                    }
                    if e.weight != 1.0 {
                        meta.insert("endpoint_addr_weight".into(), e.weight.into());
                    }
                    let ip = e.ip.map_or_else(|| e.host.to_string(), |ip| ip.to_string());
                    json!({"ip": ip, "port": e.port, "meta": meta})
                })
                .collect();
            json!({"type": "bound", "addrs": addrs, "meta": {}})
        }
        Addr::Pending => json!({"type": "pending"}),
        Addr::Failed(cause) => json!({"type": "failed", "cause": cause.as_ref()}),
    }
}
