//! Helpers for snapshot-testing stacks: a state as if a stack had been applied, and insta
//! settings for the volatile parts of plans.
//!
//! ```
//! use graven::prelude::*;
//! use graven::aws::ec2::Vpc;
//!
//! #[derive(Stack)]
//! struct Net {
//!     vpc: Vpc,
//! }
//!
//! # fn main() -> graven::Result<()> {
//! let before = graven::testing::applied(&Net { vpc: Vpc::new("10.0.0.0/16".parse()?) })?;
//! let plan = graven::plan(&Net { vpc: Vpc::new("10.1.0.0/16".parse()?) }, &before)?;
//! assert!(plan.render().contains("+/- replace vpc"));
//! // in a test: insta::assert_snapshot!(plan.render());
//! # Ok(()) }
//! ```

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::graph::{DeploymentGraph, Node};
use crate::release::{Release, builtin_images};
use crate::stack::Stack;
use crate::state::{ResourceState, State};
use crate::value::as_reference;

/// The lineage of every state made by [`applied`], so plans made against it are stable.
pub const LINEAGE: &str = "00000000-0000-4000-8000-000000000000";

/// A release with the local target's built-in images and no variables.
pub fn release() -> Release {
    Release::new(builtin_images())
}

/// The state `stack` would have right after a first apply: deterministic fake physical ids
/// (`vpc-` and 17 hex digits derived from the logical id), outputs, resolved inputs, serial 1,
/// lineage [`LINEAGE`], fixed timestamps.
///
/// # Errors
/// As [`Stack::graph`].
pub fn applied<S: Stack>(stack: &S) -> Result<State> {
    Ok(applied_graph(&stack.graph()?))
}

/// As [`applied`], from a graph.
pub fn applied_graph(graph: &DeploymentGraph) -> State {
    let mut state = State::new(graph.stack());
    state.lineage = LINEAGE.to_owned();
    state.serial = 1;
    for &i in graph.order() {
        let node = &graph.nodes()[i];
        let physical_id = fake_physical_id(graph.stack(), node);
        let outputs = fake_outputs(graph.stack(), node, &physical_id);
        let inputs = node.inputs.iter().map(|(k, v)| (k.clone(), resolve(v, &state))).collect();
        let r = ResourceState {
            id: node.id.clone(),
            kind: node.kind().to_owned(),
            physical_id,
            inputs,
            outputs,
            dependencies: node.dependencies.iter().map(|&d| graph.nodes()[d].id.clone()).collect(),
            protect: node.protect,
            destroy_before_create: node.destroy_before_create,
            token: format!("token-{}", hex(&node.id)[..8].to_owned()),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            updated_at: "2026-01-01T00:00:00Z".to_owned(),
            release: 1,
            deposed: Vec::new(),
        };
        state.resources.insert(node.id.clone(), r);
    }
    state
}

fn hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn prefix(kind: &str) -> String {
    match kind {
        "aws:ec2:Vpc" => "vpc".into(),
        "aws:ec2:Subnet" => "subnet".into(),
        "aws:ec2:InternetGateway" => "igw".into(),
        "aws:ec2:RouteTable" => "rtb".into(),
        "aws:ec2:SecurityGroup" => "sg".into(),
        "aws:ec2:LaunchTemplate" => "lt".into(),
        "aws:ec2:Instance" => "i".into(),
        "aws:ec2:Image" => "ami".into(),
        other => other.rsplit(':').next().unwrap_or(other).to_ascii_lowercase(),
    }
}

fn fake_physical_id(stack: &str, node: &Node) -> String {
    if node.kind() == "aws:autoscaling:AutoScalingGroup" {
        let id: String =
            node.id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        return format!("{stack}-{id}");
    }
    format!("{}-{}", prefix(node.kind()), &hex(&format!("{stack}/{}", node.id))[..17])
}

fn fake_outputs(stack: &str, node: &Node, physical: &str) -> Map<String, Json> {
    let mut out = Map::new();
    for (n, o) in node.schema.outputs.iter().enumerate() {
        let v = match o.ty {
            "LaunchTemplateVersion" => Json::from(1),
            "Arn" => Json::from(format!(
                "arn:aws:{}:eu-west-2:000000000000:{physical}",
                prefix(node.kind())
            )),
            "String" if o.name == "private_ip" => {
                let h = Sha256::digest(format!("{stack}/{}", node.id).as_bytes());
                Json::from(format!("10.0.{}.{}", h[0], h[1].max(4)))
            }
            ty if ty.ends_with("Id") || ty.ends_with("Name") || n == 0 => Json::from(physical),
            _ => Json::from(format!("{physical}-{}", o.name)),
        };
        out.insert(o.name.to_owned(), v);
    }
    out
}

fn resolve(v: &Json, state: &State) -> Json {
    if let Some((res, out)) = as_reference(v) {
        return state
            .resources
            .get(res)
            .and_then(|r| r.outputs.get(out))
            .cloned()
            .unwrap_or(Json::Null);
    }
    match v {
        Json::Array(a) => Json::Array(a.iter().map(|x| resolve(x, state)).collect()),
        Json::Object(m) => {
            Json::Object(m.iter().map(|(k, x)| (k.clone(), resolve(x, state))).collect())
        }
        other => other.clone(),
    }
}

/// insta settings for JSON snapshots of plans and states: redacts the lineage and timestamps.
///
/// ```
/// let _guard = graven::testing::settings().bind_to_scope();
/// ```
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_redaction(".basis.lineage", "[lineage]");
    s.add_redaction(".lineage", "[lineage]");
    s.add_redaction(".**.created_at", "[time]");
    s.add_redaction(".**.updated_at", "[time]");
    s.add_redaction(".**.started_at", "[time]");
    s.add_redaction(".**.finished_at", "[time]");
    s.add_redaction(".**.token", "[token]");
    s
}
