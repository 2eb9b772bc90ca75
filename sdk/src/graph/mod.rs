//! The deployment graph: nodes (one per resource), dependency edges, a deterministic order.
//!
//! [`DeploymentGraph::build`] walks a stack value: each resource becomes a [`Node`] with its
//! logical id, kind and serialized inputs (references resolved to absolute logical ids); edges
//! come from references and from `depends_on`. The build checks every resource's inputs, finds
//! references to resources that are not in the stack, and names the whole cycle when there is
//! one. The order is topological, ties broken by declaration order, so it is the same on every
//! run.

mod export;
mod index;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::ops::{Bound, Range};
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::error::{Error, Problem, Result};
use crate::resource::{Resource, Schema};
use crate::stack::{Inherited, Stack, join};
use crate::value::{REF_KEY, RefTarget};

use self::index::IdIndex;

/// One resource in the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// The logical id (`network.vpc`, `web[0]`).
    pub id: String,
    /// The kind's schema (its name is `schema.kind`).
    pub schema: &'static Schema,
    /// The inputs; references are `{"$ref": [<absolute logical id>, <output>]}`.
    pub inputs: Map<String, Json>,
    /// The nodes this one depends on (indices into [`DeploymentGraph::nodes`]), sorted.
    pub dependencies: Vec<usize>,
    /// Refuse to destroy this resource.
    pub protect: bool,
    /// Destroy the old resource before creating its replacement.
    pub destroy_before_create: bool,
}

impl Node {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        self.schema.kind
    }
}

struct Scope {
    path: String,
    parent: Option<usize>,
}

struct Pending {
    scope: usize,
    /// This resource's references: a range of [`Builder::refs`].
    refs: Range<usize>,
    depends_on: Vec<Arc<str>>,
}

/// A reference as made (relative to its scope): a range of [`Builder::ref_text`] and the output.
struct PendingRef {
    text: Range<usize>,
    output: &'static str,
}

/// Collects the nodes of a stack; `#[derive(Stack)]` code drives it through [`crate::stack::Member`].
pub struct Builder {
    scopes: Vec<Scope>,
    nodes: Vec<Node>,
    pending: Vec<Pending>,
    /// The references of all resources, their paths packed in `ref_text` (two allocations for
    /// the whole stack, not one per reference).
    refs: Vec<PendingRef>,
    ref_text: String,
    problems: Vec<Problem>,
    serialize_error: Option<Error>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            scopes: vec![Scope { path: String::new(), parent: None }],
            nodes: Vec::new(),
            pending: Vec::new(),
            refs: Vec::new(),
            ref_text: String::new(),
            problems: Vec::new(),
            serialize_error: None,
        }
    }

    /// Opens the scope of a nested stack at `path` inside `parent`; returns its index.
    pub fn enter_scope(&mut self, parent: usize, path: String) -> usize {
        self.scopes.push(Scope { path, parent: Some(parent) });
        self.scopes.len() - 1
    }

    /// The path of scope `scope`.
    pub fn scope_path(&self, scope: usize) -> &str {
        &self.scopes[scope].path
    }

    /// Adds one resource at `path`, made in `scope`.
    pub fn add_resource<R: Resource>(
        &mut self,
        resource: &R,
        scope: usize,
        path: String,
        inherited: &Inherited,
    ) {
        for mut p in resource.validate() {
            p.resource.clone_from(&path);
            self.problems.push(p);
        }
        let inputs = match resource.inputs() {
            Ok(i) => i,
            Err(source) => {
                if self.serialize_error.is_none() {
                    self.serialize_error =
                        Some(Error::Serialize { what: format!("the inputs of `{path}`"), source });
                }
                Map::new()
            }
        };
        let first = self.refs.len();
        let (refs, text) = (&mut self.refs, &mut self.ref_text);
        resource.visit_refs(&mut |t: RefTarget<'_>| {
            let start = text.len();
            text.push_str(t.resource);
            refs.push(PendingRef { text: start..text.len(), output: t.output });
        });
        let refs = first..self.refs.len();
        self.pending.push(Pending { scope, refs, depends_on: inherited.depends_on.clone() });
        self.nodes.push(Node {
            id: path,
            schema: R::schema(),
            inputs,
            dependencies: Vec::new(),
            protect: inherited.protect,
            destroy_before_create: inherited.destroy_before_create,
        });
    }

    /// Resolves `rel`, made in `scope`, to a node: the innermost enclosing scope that has it.
    fn resolve(&self, index: &IdIndex, nodes: &[Node], scope: usize, rel: &str) -> Option<usize> {
        let mut s = Some(scope);
        while let Some(i) = s {
            let sc = &self.scopes[i];
            if sc.path.is_empty() {
                return index.get(nodes, &[rel]);
            }
            if let Some(n) = index.get(nodes, &[&sc.path, ".", rel]) {
                return Some(n);
            }
            s = sc.parent;
        }
        None
    }

    fn finish(self, stack: &'static str) -> Result<DeploymentGraph> {
        let Builder { scopes, mut nodes, pending, refs, ref_text, mut problems, serialize_error } =
            self;
        if let Some(e) = serialize_error {
            return Err(e);
        }
        let this = Builder {
            scopes,
            nodes: Vec::new(),
            pending: Vec::new(),
            refs: Vec::new(),
            ref_text: String::new(),
            problems: Vec::new(),
            serialize_error: None,
        };
        let index =
            IdIndex::build(&nodes).map_err(|i| Error::DuplicateId { id: nodes[i].id.clone() })?;
        let sorted: BTreeMap<&str, usize> = if pending.iter().any(|p| !p.depends_on.is_empty()) {
            nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect()
        } else {
            BTreeMap::new()
        };

        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(nodes.len());
        let mut rewrites: Vec<(usize, Vec<(String, String)>)> = Vec::new();
        let mut errors = Vec::new();
        for (i, p) in pending.iter().enumerate() {
            let mut d = Vec::with_capacity(p.refs.len());
            let mut rw = Vec::new();
            for r in &refs[p.refs.clone()] {
                let (rel, output) = (&ref_text[r.text.clone()], &r.output);
                match this.resolve(&index, &nodes, p.scope, rel) {
                    Some(t) => {
                        let target = &nodes[t];
                        if target.schema.output(output).is_none() {
                            errors.push(Error::UnknownOutput {
                                from: nodes[i].id.clone(),
                                to: target.id.clone(),
                                kind: target.schema.kind.to_owned(),
                                output: (*output).to_owned(),
                                known: target
                                    .schema
                                    .outputs
                                    .iter()
                                    .map(|o| format!("`{}`", o.name))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            });
                        }
                        if target.id != rel {
                            rw.push((rel.to_owned(), target.id.clone()));
                        }
                        d.push(t);
                    }
                    None => errors.push(Error::DanglingReference {
                        from: nodes[i].id.clone(),
                        to: join(&this.scopes[p.scope].path, rel),
                        output: (*output).to_owned(),
                    }),
                }
            }
            for prefix in &p.depends_on {
                // Every resource at `prefix` or under it (`prefix.x`, `prefix[0]`); none for an
                // empty collection or an absent option.
                let from = (Bound::Included(&**prefix), Bound::Unbounded);
                for (id, &t) in sorted.range::<&str, _>(from) {
                    let Some(rest) = id.strip_prefix(&**prefix) else { break };
                    let inside = rest.is_empty() || rest.starts_with('.') || rest.starts_with('[');
                    if inside && t != i {
                        d.push(t);
                    }
                }
            }
            d.sort_unstable();
            d.dedup();
            deps.push(d);
            if !rw.is_empty() {
                rewrites.push((i, rw));
            }
        }
        drop(sorted);
        for (i, rw) in rewrites {
            for v in nodes[i].inputs.values_mut() {
                rewrite_refs(v, &rw);
            }
        }
        for (n, d) in nodes.iter_mut().zip(deps) {
            n.dependencies = d;
        }

        crate::aws::check_graph(&nodes, &mut problems);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        DeploymentGraph::with_index(stack, nodes, index)
    }
}

fn rewrite_refs(v: &mut Json, rw: &[(String, String)]) {
    match v {
        Json::Object(m) => {
            if m.len() == 1 {
                if let Some(Json::Array(r)) = m.get_mut(REF_KEY) {
                    if let Some(Json::String(res)) = r.get_mut(0) {
                        if let Some((_, abs)) = rw.iter().find(|(rel, _)| rel == res) {
                            abs.clone_into(res);
                        }
                    }
                    return;
                }
            }
            for v in m.values_mut() {
                rewrite_refs(v, rw);
            }
        }
        Json::Array(a) => {
            for v in a {
                rewrite_refs(v, rw);
            }
        }
        _ => {}
    }
}

/// A stack compiled into resources and their dependencies.
#[derive(Debug, Clone)]
pub struct DeploymentGraph {
    stack: &'static str,
    nodes: Vec<Node>,
    index: IdIndex,
    order: Vec<usize>,
}

impl DeploymentGraph {
    /// Builds the graph of `stack`.
    ///
    /// # Errors
    /// [`Error::Invalid`] listing every invalid input, [`Error::DanglingReference`],
    /// [`Error::DuplicateId`], [`Error::Cycle`] naming the whole cycle.
    pub fn build<S: Stack>(stack: &S) -> Result<DeploymentGraph> {
        let mut b = Builder::new();
        stack.add_fields(&mut b, 0, &Inherited::default());
        b.finish(S::NAME)
    }

    /// Builds a graph from nodes whose `dependencies` are set.
    ///
    /// # Errors
    /// [`Error::Cycle`] when the dependencies have a cycle, [`Error::DuplicateId`] when two
    /// nodes have the same id, [`Error::DanglingReference`] when a dependency is not the index
    /// of a node.
    pub fn from_nodes(stack: &'static str, nodes: Vec<Node>) -> Result<DeploymentGraph> {
        let index =
            IdIndex::build(&nodes).map_err(|i| Error::DuplicateId { id: nodes[i].id.clone() })?;
        DeploymentGraph::with_index(stack, nodes, index)
    }

    fn with_index(
        stack: &'static str,
        nodes: Vec<Node>,
        index: IdIndex,
    ) -> Result<DeploymentGraph> {
        let order = topological_order(&nodes)?;
        Ok(DeploymentGraph { stack, nodes, index, order })
    }

    /// The stack's name.
    pub fn stack(&self) -> &'static str {
        self.stack
    }

    /// The nodes, in declaration order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The number of resources.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the stack has no resources.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The index of the node with logical id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(&self.nodes, &[id])
    }

    /// The node with logical id `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index_of(id).map(|i| &self.nodes[i])
    }

    /// Node indices in dependency order (dependencies first; ties in declaration order).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// For each node, the nodes that depend on it.
    pub fn dependants(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &d in &n.dependencies {
                out[d].push(i);
            }
        }
        out
    }
}

/// Kahn's algorithm with a min-heap on declaration index; names a cycle when one is left.
///
/// The dependants are kept as one array sliced per node (compressed sparse rows), not a `Vec`
/// per node: two allocations for the whole graph.
fn topological_order(nodes: &[Node]) -> Result<Vec<usize>> {
    let n = nodes.len();
    let mut indegree = vec![0u32; n];
    let mut start = vec![0usize; n + 1];
    for (i, node) in nodes.iter().enumerate() {
        indegree[i] = node.dependencies.len() as u32;
        for &d in &node.dependencies {
            if d >= n {
                return Err(Error::DanglingReference {
                    from: node.id.clone(),
                    to: format!("node #{d}"),
                    output: String::new(),
                });
            }
            start[d + 1] += 1;
        }
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut next = start.clone();
    let mut dependants = vec![0usize; start[n]];
    for (i, node) in nodes.iter().enumerate() {
        for &d in &node.dependencies {
            dependants[next[d]] = i;
            next[d] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &j in &dependants[start[i]..start[i + 1]] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(Error::Cycle { path: find_cycle(nodes, &indegree) })
}

/// Follows dependencies among the nodes left with a positive in-degree until one repeats.
fn find_cycle(nodes: &[Node], indegree: &[u32]) -> String {
    let start = indegree.iter().position(|&d| d > 0).unwrap_or(0);
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path: Vec<usize> = Vec::new();
    let mut cur = start;
    loop {
        if let Some(&at) = seen.get(&cur) {
            let mut cycle: Vec<&str> = path[at..].iter().map(|&i| nodes[i].id.as_str()).collect();
            // Report the cycle in the direction of the edges "a depends on b": a -> b.
            cycle.push(nodes[cur].id.as_str());
            return cycle.join(" -> ");
        }
        seen.insert(cur, path.len());
        path.push(cur);
        match nodes[cur].dependencies.iter().find(|&&d| indegree[d] > 0) {
            Some(&next) => cur = next,
            None => return nodes[cur].id.clone(),
        }
    }
}
