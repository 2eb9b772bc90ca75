//! Resource kinds: the [`Resource`] and [`Outputs`] traits and the [`Schema`] they publish.
//!
//! A resource kind is a struct with `#[derive(Resource)]`; its fields are the inputs. The derive
//! generates the kind's name, its [`Schema`] (each field's update semantics), a visitor over the
//! references in the inputs and their serialization (references stay symbolic). The kind's
//! outputs are a struct with `#[derive(Outputs)]`, which generates the typed handle that
//! `Stack::refs()` hands out (`r.vpc.id()`).

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::value::RefTarget;

/// What happens when an input field changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Update {
    /// The resource is replaced (the default: infrastructure is immutable).
    Replace,
    /// The field is updated in place (tags, capacity).
    InPlace,
    /// The field is updated in place and the fleet's instances are then rolled under its
    /// rollout strategy (a group's launch template version).
    Roll,
}

/// The schema of one input field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name, as serialized.
    pub name: &'static str,
    /// What a change to it does.
    pub update: Update,
    /// A secret: never rendered, never stored as a value.
    pub secret: bool,
}

/// The schema of one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// The output's name (`id`).
    pub name: &'static str,
    /// Its Rust type, for messages (`VpcId`).
    pub ty: &'static str,
    /// Whether an in-place update changes it (a launch template's `latest_version`).
    pub changes_on_update: bool,
}

/// The schema of a resource kind, used by the planner and the renderer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The kind's name (`aws:ec2:Vpc`).
    pub kind: &'static str,
    /// The input fields, in declaration order.
    pub fields: &'static [Field],
    /// The outputs, in declaration order.
    pub outputs: &'static [Output],
}

impl Schema {
    /// The schema of input field `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The schema of output `name`.
    pub fn output(&self, name: &str) -> Option<&'static Output> {
        self.outputs.iter().find(|o| o.name == name)
    }
}

/// A resource kind. Implemented by `#[derive(Resource)]`.
pub trait Resource: Send + Sync + 'static {
    /// The kind's name, `provider:service:Type` (`aws:ec2:Vpc`).
    const KIND: &'static str;

    /// The outputs, known after apply.
    type Outputs: Outputs;

    /// The kind's schema.
    fn schema() -> &'static Schema;

    /// The inputs, serialized field by field; references and secrets stay symbolic.
    fn inputs(&self) -> serde_json::Result<serde_json::Map<String, serde_json::Value>>;

    /// Calls `f` once per reference in the inputs.
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>));

    /// Checks the inputs that can be checked alone (CIDRs, ports, tags, capacities).
    ///
    /// Each problem names the field; the graph builder adds the resource's logical id.
    /// The derive calls `#[graven(validate = path)]` when given, else finds nothing wrong.
    fn validate(&self) -> Vec<Problem>;
}

/// The outputs of a resource kind. Implemented by `#[derive(Outputs)]`.
pub trait Outputs: Send + Sync + 'static {
    /// The typed handle `Stack::refs()` returns for a resource of this kind.
    type Handle;

    /// The handle of the resource at logical id `path`.
    fn handle(path: std::sync::Arc<str>) -> Self::Handle;

    /// The outputs' schema.
    const FIELDS: &'static [Output];
}

/// Builds a [`Problem`] for `field` (the graph builder fills in the resource).
pub fn problem(field: &str, message: impl Into<String>) -> Problem {
    Problem { resource: String::new(), field: field.to_owned(), message: message.into() }
}
