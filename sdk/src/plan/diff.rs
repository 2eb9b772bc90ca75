//! The planner: desired graph + recorded state (+ observed cloud) -> changes.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value as Json};

use super::steps;
use super::{Action, Basis, Change, FieldChange, Operation, Options, Plan, Shown, Summary};
use crate::error::{Error, Result};
use crate::graph::{DeploymentGraph, Node};
use crate::provider::Observed;
use crate::resource::Update;
use crate::state::{ResourceState, State};
use crate::value::{REF_KEY, as_reference, as_secret};

/// Which outputs of a node the apply changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outputs {
    /// None: the node is unchanged, or its update keeps its outputs.
    Same,
    /// Those marked `changes_on_update`.
    Updated,
    /// All of them (create, replace).
    All,
}

/// A field's desired value, with references resolved where their outputs are known.
enum Resolved<'a> {
    /// No reference inside: the desired JSON as is.
    Plain(&'a Json),
    /// References resolved.
    Known(Json),
    /// A reference reads an output the apply changes (`vpc.id`); for a composite value, the
    /// value with the known references resolved and the others left as references.
    Unknown(String, Option<Json>),
}

impl Resolved<'_> {
    fn value(&self) -> Option<&Json> {
        match self {
            Resolved::Plain(v) => Some(v),
            Resolved::Known(v) => Some(v),
            Resolved::Unknown(..) => None,
        }
    }
}

struct Ctx<'a> {
    graph: &'a DeploymentGraph,
    /// The recorded resource of each node, by node index.
    recorded: Vec<Option<&'a ResourceState>>,
    outputs: Vec<Outputs>,
}

impl Ctx<'_> {
    fn output_changes(&self, target: usize, output: &str) -> bool {
        match self.outputs[target] {
            Outputs::Same => false,
            Outputs::All => true,
            Outputs::Updated => self.graph.nodes()[target]
                .schema
                .output(output)
                .is_some_and(|o| o.changes_on_update),
        }
    }

    /// Resolves the references in `v`; `Unknown` names the first one whose output changes.
    fn resolve<'v>(&self, v: &'v Json) -> Resolved<'v> {
        if !contains_ref(v) {
            return Resolved::Plain(v);
        }
        let mut first = None;
        let resolved = self.resolve_owned(v, &mut first);
        match first {
            None => Resolved::Known(resolved),
            Some(from) if as_reference(v).is_some() => Resolved::Unknown(from, None),
            Some(from) => Resolved::Unknown(from, Some(resolved)),
        }
    }

    /// Replaces each reference whose output is known by its value; leaves the others as
    /// references and records the first of them in `first`.
    fn resolve_owned(&self, v: &Json, first: &mut Option<String>) -> Json {
        if let Some((res, out)) = as_reference(v) {
            let known = self
                .graph
                .index_of(res)
                .filter(|&t| !self.output_changes(t, out))
                .and_then(|t| self.recorded[t])
                .and_then(|r| r.outputs.get(out))
                .cloned();
            return match known {
                Some(k) => k,
                None => {
                    first.get_or_insert_with(|| format!("{res}.{out}"));
                    v.clone()
                }
            };
        }
        match v {
            Json::Array(a) => Json::Array(a.iter().map(|x| self.resolve_owned(x, first)).collect()),
            Json::Object(m) => Json::Object(
                m.iter().map(|(k, x)| (k.clone(), self.resolve_owned(x, first))).collect(),
            ),
            other => other.clone(),
        }
    }
}

fn contains_ref(v: &Json) -> bool {
    match v {
        Json::Object(m) => m.contains_key(REF_KEY) || m.values().any(contains_ref),
        Json::Array(a) => a.iter().any(contains_ref),
        _ => false,
    }
}

fn shown(v: &Json) -> Shown {
    match as_secret(v) {
        Some(name) => Shown::Secret(name.to_owned()),
        None => Shown::Known(v.clone()),
    }
}

fn effect_reason(field: &str, effect: Update, unknown: Option<&str>, drifted: bool) -> String {
    let drift = if drifted { " outside Graven" } else { "" };
    match (effect, unknown) {
        (Update::Replace, Some(from)) => format!("replaced because `{from}` will change"),
        (Update::Roll, Some(from)) => format!("rolls because `{from}` will change"),
        (_, Some(from)) => format!("updated because `{from}` will change"),
        (Update::Replace, None) => format!("`{field}` changed{drift}: forces replacement"),
        (Update::Roll, None) => format!("`{field}` changed{drift}: rolls the fleet"),
        (_, None) => format!("`{field}` changed{drift}: updated in place"),
    }
}

/// The plan of an apply.
pub(super) fn plan(graph: &DeploymentGraph, state: &State, options: &Options) -> Result<Plan> {
    let nodes = graph.nodes();
    let mut recorded: Vec<Option<&ResourceState>> = vec![None; nodes.len()];
    let mut removed: Vec<&ResourceState> = Vec::new();
    for r in state.resources.values() {
        match graph.index_of(&r.id) {
            Some(i) => recorded[i] = Some(r),
            None => removed.push(r),
        }
    }
    let mut cx = Ctx { graph, recorded, outputs: vec![Outputs::Same; nodes.len()] };
    let mut planned: Vec<Option<Change>> = vec![None; nodes.len()];
    let mut dbc = vec![false; nodes.len()];
    let mut protected = Vec::new();

    for &i in graph.order() {
        let node = &nodes[i];
        let recorded = cx.recorded[i];
        let observed = options.observed.as_ref().map(|o| o.get(&node.id).and_then(Option::as_ref));
        let change = match (recorded, observed) {
            (None, _) => Some(create(node, &cx, vec!["new resource".to_owned()])),
            (Some(_), Some(None)) => Some(create(
                node,
                &cx,
                vec!["deleted outside Graven: it is created again".to_owned()],
            )),
            (Some(r), _) if r.kind != node.kind() => {
                let mut c = create(
                    node,
                    &cx,
                    vec![format!("kind changed from `{}`: forces replacement", r.kind)],
                );
                c.action = Action::Replace;
                c.physical_id = Some(r.physical_id.clone());
                Some(c)
            }
            (Some(r), observed) => compare(node, r, observed.flatten(), &cx),
        };
        if let Some(mut c) = change {
            if c.action == Action::Replace {
                dbc[i] = node.destroy_before_create || node.dependencies.iter().any(|&d| dbc[d]);
                c.destroy_before_create = dbc[i];
                if node.protect || recorded.is_some_and(|r| r.protect) {
                    protected
                        .push((node.id.clone(), format!("replacement: {}", c.reasons.join("; "))));
                }
            }
            cx.outputs[i] = match c.action {
                Action::Create | Action::Replace => Outputs::All,
                Action::Update | Action::Roll => Outputs::Updated,
                Action::Delete => Outputs::Same,
            };
            planned[i] = Some(c);
        }
    }

    // Resources recorded but no longer in the stack.
    if !removed.is_empty() {
        let ranks = steps::state_ranks(state);
        removed.sort_by_key(|r| std::cmp::Reverse(ranks.get(r.id.as_str()).copied()));
    }
    for r in &removed {
        if r.protect {
            protected.push((r.id.clone(), "it is no longer in the stack".to_owned()));
        }
    }
    if let Some((id, why)) = protected.into_iter().next() {
        return Err(Error::Protected { id, why });
    }

    let deletes: Vec<Change> = removed.iter().map(|r| delete_change(r)).collect();
    let unchanged = planned.iter().filter(|c| c.is_none()).count() as u64;
    let mut changes: Vec<Change> =
        graph.order().iter().filter_map(|&i| planned[i].take()).collect();
    changes.extend(deletes);
    let steps = steps::build(graph, state, &changes)?;
    Ok(finish(state, Operation::Apply, changes, steps, unchanged, options))
}

fn finish(
    state: &State,
    operation: Operation,
    changes: Vec<Change>,
    steps: Vec<super::Step>,
    unchanged: u64,
    options: &Options,
) -> Plan {
    let mut summary = Summary { unchanged, ..Summary::default() };
    for c in &changes {
        match c.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Delete => summary.delete += 1,
            Action::Roll => summary.roll += 1,
        }
    }
    let mut images = BTreeMap::new();
    if !options.images.is_empty() {
        let by_id: HashMap<&str, String> = options
            .images
            .iter()
            .map(|i| (i.id.as_str(), format!("{} {}", i.name, i.version)))
            .collect();
        for c in &changes {
            for f in &c.fields {
                for v in [f.before.as_ref(), Some(&f.after)].into_iter().flatten() {
                    if let Shown::Known(Json::String(s)) = v {
                        if let Some(name) = by_id.get(s.as_str()) {
                            images.insert(s.clone(), name.clone());
                        }
                    }
                }
            }
        }
    }
    Plan {
        format_version: super::FORMAT_VERSION.to_owned(),
        stack: state.stack.clone(),
        operation,
        basis: Basis {
            lineage: if state.resources.is_empty() && state.releases.is_empty() {
                None
            } else {
                Some(state.lineage.clone())
            },
            serial: state.serial,
        },
        changes,
        steps,
        summary,
        images,
    }
}

fn base_change(
    node: &Node,
    action: Action,
    reasons: Vec<String>,
    fields: Vec<FieldChange>,
) -> Change {
    Change {
        id: node.id.clone(),
        kind: node.kind().to_owned(),
        action,
        reasons,
        fields,
        inputs: node.inputs.clone(),
        dependencies: Vec::new(),
        physical_id: None,
        destroy_before_create: node.destroy_before_create,
        protect: node.protect,
    }
}

fn create(node: &Node, cx: &Ctx<'_>, reasons: Vec<String>) -> Change {
    let fields = node
        .schema
        .fields
        .iter()
        .filter_map(|f| {
            let v = node.inputs.get(f.name)?;
            if v.is_null() {
                return None;
            }
            let after = match cx.resolve(v) {
                Resolved::Unknown(from, None) => Shown::KnownAfterApply(from),
                Resolved::Unknown(_, Some(partial)) => Shown::Partial(partial),
                r => shown(r.value().unwrap_or(&Json::Null)),
            };
            Some(FieldChange { name: f.name.to_owned(), before: None, after, effect: f.update })
        })
        .collect();
    let mut c = base_change(node, Action::Create, reasons, fields);
    c.dependencies = node.dependencies.iter().map(|&d| cx.graph.nodes()[d].id.clone()).collect();
    c
}

fn compare(
    node: &Node,
    recorded: &ResourceState,
    observed: Option<&Observed>,
    cx: &Ctx<'_>,
) -> Option<Change> {
    let mut fields = Vec::new();
    let mut reasons = Vec::new();
    let mut worst: Option<Update> = None;
    for f in node.schema.fields {
        let desired = node.inputs.get(f.name).unwrap_or(&Json::Null);
        let before = recorded.inputs.get(f.name).unwrap_or(&Json::Null);
        let seen = observed.and_then(|o| o.inputs.get(f.name));
        let drifted = seen.is_some_and(|s| s != before);
        let before = seen.unwrap_or(before);
        let resolved = cx.resolve(desired);
        let (after, unknown) = match &resolved {
            Resolved::Unknown(from, None) => {
                (Shown::KnownAfterApply(from.clone()), Some(from.as_str()))
            }
            Resolved::Unknown(from, Some(partial)) => {
                (Shown::Partial(partial.clone()), Some(from.as_str()))
            }
            r => {
                let v = r.value().unwrap_or(&Json::Null);
                if v == before {
                    continue;
                }
                (shown(v), None)
            }
        };
        reasons.push(effect_reason(f.name, f.update, unknown, drifted));
        worst = Some(match (worst, f.update) {
            (Some(Update::Replace), _) | (_, Update::Replace) => Update::Replace,
            (Some(Update::Roll), _) | (_, Update::Roll) => Update::Roll,
            _ => Update::InPlace,
        });
        fields.push(FieldChange {
            name: f.name.to_owned(),
            before: Some(shown(before)),
            after,
            effect: f.update,
        });
    }
    let action = match worst? {
        Update::Replace => Action::Replace,
        Update::Roll => Action::Roll,
        _ => Action::Update,
    };
    let mut c = base_change(node, action, reasons, fields);
    c.physical_id = Some(recorded.physical_id.clone());
    c.dependencies = node.dependencies.iter().map(|&d| cx.graph.nodes()[d].id.clone()).collect();
    Some(c)
}

fn delete_change(r: &ResourceState) -> Change {
    Change {
        id: r.id.clone(),
        kind: r.kind.clone(),
        action: Action::Delete,
        reasons: vec!["no longer in the stack".to_owned()],
        fields: Vec::new(),
        inputs: Map::new(),
        dependencies: r.dependencies.clone(),
        physical_id: Some(r.physical_id.clone()),
        destroy_before_create: r.destroy_before_create,
        protect: r.protect,
    }
}

/// The plan of a destroy: every recorded resource, in reverse dependency order.
pub(super) fn destroy(state: &State) -> Result<Plan> {
    let mut all: Vec<&ResourceState> = state.resources.values().collect();
    let ranks = steps::state_ranks(state);
    all.sort_by_key(|r| std::cmp::Reverse(ranks.get(r.id.as_str()).copied()));
    if let Some(r) = all.iter().find(|r| r.protect) {
        return Err(Error::Protected {
            id: r.id.clone(),
            why: "the stack is destroyed".to_owned(),
        });
    }
    let changes: Vec<Change> = all
        .iter()
        .map(|r| {
            let mut c = delete_change(r);
            c.reasons = vec!["the stack is destroyed".to_owned()];
            c
        })
        .collect();
    let graph = DeploymentGraph::from_nodes("", Vec::new())?;
    let steps = steps::build(&graph, state, &changes)?;
    Ok(finish(state, Operation::Destroy, changes, steps, 0, &Options::default()))
}
