//! The execution order: steps and what each waits for.
//!
//! Creates, updates, rolls and the create half of replacements follow the dependency order of
//! the stack. Deletes, and the destroy half of replacements, go in reverse order once the
//! resources that depended on the old object have moved (been updated, replaced or deleted).
//! A destroy-before-create replacement destroys first; its replaced dependants are destroyed
//! before it (they are made destroy-before-create too, or the order would have a cycle).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::{Action, Change, Step, StepAction};
use crate::error::{Error, Result};
use crate::graph::DeploymentGraph;
use crate::state::State;

/// The rank of each recorded resource in the recorded dependency order (dependencies first;
/// ties and cycles broken by id), for ordering deletes.
pub(super) fn state_ranks(state: &State) -> HashMap<&str, usize> {
    let ids: Vec<&str> = state.resources.keys().map(String::as_str).collect();
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut indegree = vec![0usize; ids.len()];
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
    for (i, r) in state.resources.values().enumerate() {
        for d in &r.dependencies {
            if let Some(&j) = index.get(d.as_str()) {
                indegree[i] += 1;
                dependants[j].push(i);
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..ids.len()).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut rank = HashMap::with_capacity(ids.len());
    let mut next = 0;
    while let Some(Reverse(i)) = ready.pop() {
        rank.insert(ids[i], next);
        next += 1;
        for &j in &dependants[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    for id in ids {
        rank.entry(id).or_insert_with(|| {
            next += 1;
            next
        });
    }
    rank
}

/// Builds the steps of `changes` and orders them.
pub(super) fn build(
    _graph: &DeploymentGraph,
    state: &State,
    changes: &[Change],
) -> Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::with_capacity(changes.len() + 8);
    let mut forward: HashMap<&str, usize> = HashMap::with_capacity(changes.len());
    let mut destroys: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut dbc_delete: HashMap<&str, usize> = HashMap::new();
    let push = |steps: &mut Vec<Step>, action, id: &str, physical_id: Option<String>| {
        steps.push(Step { action, id: id.to_owned(), physical_id, after: Vec::new() });
        steps.len() - 1
    };

    for c in changes {
        let id = c.id.as_str();
        match c.action {
            Action::Create => {
                forward.insert(id, push(&mut steps, StepAction::Create, id, None));
            }
            Action::Update => {
                forward.insert(id, push(&mut steps, StepAction::Update, id, None));
            }
            Action::Roll => {
                forward.insert(id, push(&mut steps, StepAction::Roll, id, None));
            }
            Action::Replace if c.destroy_before_create => {
                let d = push(&mut steps, StepAction::Delete, id, c.physical_id.clone());
                destroys.entry(id).or_default().push(d);
                dbc_delete.insert(id, d);
                forward.insert(id, push(&mut steps, StepAction::Create, id, None));
            }
            Action::Replace => {
                forward.insert(id, push(&mut steps, StepAction::Create, id, None));
                let d = push(&mut steps, StepAction::DeleteDeposed, id, c.physical_id.clone());
                destroys.entry(id).or_default().push(d);
            }
            Action::Delete => {
                let d = push(&mut steps, StepAction::Delete, id, c.physical_id.clone());
                destroys.entry(id).or_default().push(d);
            }
        }
    }
    // Old objects left by earlier create-before-destroy replacements.
    for r in state.resources.values() {
        for old in &r.deposed {
            let d =
                push(&mut steps, StepAction::DeleteDeposed, &r.id, Some(old.physical_id.clone()));
            destroys.entry(r.id.as_str()).or_default().push(d);
        }
    }

    // What each step waits for.
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for c in changes {
        if let Some(&f) = forward.get(c.id.as_str()) {
            for d in &c.dependencies {
                if let Some(&g) = forward.get(d.as_str()) {
                    after[f].push(g);
                }
            }
            if let Some(&d) = dbc_delete.get(c.id.as_str()) {
                after[f].push(d);
            }
        }
    }
    if !destroys.is_empty() {
        let mut old_dependants: HashMap<&str, Vec<&str>> = HashMap::new();
        for r in state.resources.values() {
            for d in &r.dependencies {
                old_dependants.entry(d.as_str()).or_default().push(r.id.as_str());
            }
        }
        for (id, ds) in &destroys {
            for &d in ds {
                let is_dbc = dbc_delete.get(id) == Some(&d);
                if steps[d].action == StepAction::DeleteDeposed {
                    if let Some(&f) = forward.get(id) {
                        after[d].push(f);
                    }
                }
                for y in old_dependants.get(id).map(Vec::as_slice).unwrap_or(&[]) {
                    if let Some(yd) = destroys.get(y) {
                        after[d].extend(yd.iter().copied().filter(|&x| x != d));
                    }
                    if !is_dbc {
                        if let Some(&f) = forward.get(y) {
                            after[d].push(f);
                        }
                    }
                }
            }
        }
    }

    // A resource leaving the stack forgets its old objects only once they are gone: its delete
    // waits for the deletes of its old objects (not in a destroy-first replacement, whose
    // create those deletes already wait for).
    for (id, ds) in &destroys {
        if dbc_delete.contains_key(id) {
            continue;
        }
        let old: Vec<usize> =
            ds.iter().copied().filter(|&d| steps[d].action == StepAction::DeleteDeposed).collect();
        for &d in ds {
            if steps[d].action == StepAction::Delete {
                after[d].extend(old.iter().copied());
            }
        }
    }

    // Order: Kahn's algorithm, ties broken by creation order.
    let n = steps.len();
    let mut indegree = vec![0usize; n];
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, a) in after.iter_mut().enumerate() {
        a.sort_unstable();
        a.dedup();
        indegree[i] = a.len();
        for &j in a.iter() {
            next[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &j in &next[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() != n {
        let stuck: Vec<String> = (0..n)
            .filter(|&i| indegree[i] > 0)
            .take(5)
            .map(|i| format!("{:?} `{}`", steps[i].action, steps[i].id))
            .collect();
        return Err(Error::Plan(format!(
            "the steps of this plan cannot be ordered (a dependency cycle among {}); mark one of these resources `destroy_before_create` or split the change in two applies",
            stuck.join(", ")
        )));
    }
    let mut position = vec![0usize; n];
    for (p, &i) in order.iter().enumerate() {
        position[i] = p;
    }
    let mut out: Vec<Step> = Vec::with_capacity(n);
    let mut steps: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    for &i in &order {
        let Some(mut s) = steps[i].take() else { continue };
        let mut a: Vec<usize> = after[i].iter().map(|&j| position[j]).collect();
        a.sort_unstable();
        s.after = a;
        out.push(s);
    }
    Ok(out)
}
