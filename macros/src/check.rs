//! Rules that need the whole struct: `depends_on` names, self-dependencies, cycles.

use std::collections::BTreeMap;

use crate::ctxt::{Ctxt, list, suggest};
use crate::model::Container;

/// Checks the `depends_on` attributes of a stack: every name is a field, no field depends on
/// itself, and the declared edges have no cycle. Returns, per field, the valid targets.
pub(crate) fn depends_on(cx: &mut Ctxt, c: &Container<'_>) -> Vec<Vec<String>> {
    let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
    let mut edges: Vec<Vec<String>> = Vec::with_capacity(c.fields.len());
    for f in &c.fields {
        let mut valid = Vec::new();
        for target in f.attrs.idents("depends_on") {
            let t = target.to_string();
            if t == f.name {
                cx.error_spanned_by(
                    target,
                    format!("`{t}` cannot depend on itself; remove it from `depends_on`"),
                );
            } else if names.contains(&t.as_str()) {
                if valid.contains(&t) {
                    cx.error_spanned_by(target, format!("`{t}` is listed twice in `depends_on`"));
                } else {
                    valid.push(t);
                }
            } else {
                let hint = suggest(&t, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                cx.error_spanned_by(
                    target,
                    format!(
                        "unknown field `{t}` in `depends_on`; {hint}fields are {}",
                        list(names.iter().copied())
                    ),
                );
            }
        }
        edges.push(valid);
    }
    report_cycles(cx, c, &edges);
    edges
}

/// Finds cycles among the declared edges with a depth-first search and reports each once, on
/// the `depends_on` entry that closes it.
fn report_cycles(cx: &mut Ctxt, c: &Container<'_>, edges: &[Vec<String>]) {
    let index: BTreeMap<&str, usize> =
        c.fields.iter().enumerate().map(|(i, f)| (f.name.as_str(), i)).collect();
    // 0 = unvisited, 1 = on the stack, 2 = done
    let mut state = vec![0u8; c.fields.len()];
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..c.fields.len() {
        visit(cx, c, edges, &index, start, &mut state, &mut stack);
    }
}

fn visit(
    cx: &mut Ctxt,
    c: &Container<'_>,
    edges: &[Vec<String>],
    index: &BTreeMap<&str, usize>,
    n: usize,
    state: &mut [u8],
    stack: &mut Vec<usize>,
) {
    if state[n] != 0 {
        return;
    }
    state[n] = 1;
    stack.push(n);
    for t in &edges[n] {
        let Some(&m) = index.get(t.as_str()) else { continue };
        if state[m] == 1 {
            let at = stack.iter().position(|&s| s == m).unwrap_or(0);
            let mut path: Vec<&str> =
                stack[at..].iter().map(|&s| c.fields[s].name.as_str()).collect();
            path.push(&c.fields[m].name);
            let span = c.fields[n]
                .attrs
                .idents("depends_on")
                .iter()
                .find(|i| *i == t.as_str())
                .map_or_else(|| c.fields[n].ident.span(), proc_macro2::Ident::span);
            cx.syn_error(syn::Error::new(
                span,
                format!(
                    "`depends_on` makes a cycle: {}; remove one of these dependencies",
                    path.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(" -> ")
                ),
            ));
        } else {
            visit(cx, c, edges, index, m, state, stack);
        }
    }
    stack.pop();
    state[n] = 2;
}
