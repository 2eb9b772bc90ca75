//! Export of a [`DeploymentGraph`] to Graphviz DOT and Mermaid.

use std::fmt::Write;

use super::DeploymentGraph;

impl DeploymentGraph {
    /// The graph in Graphviz DOT: one node per resource (labelled with its kind), one edge per
    /// dependency, pointing from the dependant to what it depends on.
    ///
    /// ```
    /// # use graven::graph::DeploymentGraph;
    /// # fn show(graph: &DeploymentGraph) {
    /// println!("{}", graph.to_dot()); // pipe into `dot -Tsvg`
    /// # }
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph {} {{", dot_quote(self.stack));
        out.push_str("  rankdir=\"BT\";\n  node [shape=box];\n");
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "  {} [label={}];",
                dot_quote(&n.id),
                dot_quote(&format!("{}\\n{}", n.id, n.schema.kind))
            );
        }
        for n in &self.nodes {
            for &d in &n.dependencies {
                let _ =
                    writeln!(out, "  {} -> {};", dot_quote(&n.id), dot_quote(&self.nodes[d].id));
            }
        }
        out.push_str("}\n");
        out
    }

    /// The graph as a Mermaid flowchart (renders in GitHub and mdBook).
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart BT\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                out,
                "  n{i}[\"{}<br/><small>{}</small>\"]",
                mermaid_escape(&n.id),
                n.schema.kind
            );
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for &d in &n.dependencies {
                let _ = writeln!(out, "  n{i} --> n{d}");
            }
        }
        out
    }
}

fn dot_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}
