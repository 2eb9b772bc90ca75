//! Plans: what applying a stack will do, and why.
//!
//! [`plan`](crate::plan()) compares a stack's [`DeploymentGraph`] with its
//! recorded [`crate::state::State`] (and, optionally, with what was observed in the cloud) and
//! gives a [`Plan`]: one [`Change`] per resource that changes, each with its action, the fields
//! that changed (old -> new) and the reasons, plus the execution order as [`Step`]s. A plan is a
//! pure, deterministic value: the same inputs always render the same bytes, so plans can be
//! reviewed in snapshot tests.
//!
//! - [`Plan::render`] gives readable text in the spirit of Terraform's plan.
//! - [`Plan::to_json`] gives the versioned machine-readable form ([`FORMAT_VERSION`]).

mod diff;
mod render;
mod steps;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::Result;
use crate::graph::DeploymentGraph;
use crate::provider::Observed;
use crate::release::ImageRecord;
use crate::resource::Update;
use crate::state::State;

/// The version of the JSON plan format. Minor versions only add fields; a major version
/// changes or removes some.
pub const FORMAT_VERSION: &str = "1.0";

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// A new resource.
    Create,
    /// Fields that allow it are updated in place.
    Update,
    /// A replace-forcing field changed: a new object replaces the old one.
    Replace,
    /// The resource left the stack (or the stack is destroyed).
    Delete,
    /// A fleet's launch configuration changed: it is updated and its instances are replaced
    /// under its rollout strategy.
    Roll,
}

impl Action {
    /// The plan's symbol for the action (`+`, `~`, `-/+`, `-`, `*`).
    pub fn symbol(self, destroy_before_create: bool) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace if destroy_before_create => "-/+",
            Action::Replace => "+/-",
            Action::Delete => "-",
            Action::Roll => "*",
        }
    }

    /// The action's name (`create`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Roll => "roll",
        }
    }
}

/// A value as the plan shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Shown {
    /// A known value.
    Known(Json),
    /// Known after apply: it reads an output that the apply will change (`vpc.id`).
    KnownAfterApply(String),
    /// Partly known: the parts still written as references (`{"$ref": ...}`) are known after
    /// apply (a list of subnet ids some of which are replaced).
    Partial(Json),
    /// A secret: only its name is known to the plan.
    Secret(String),
}

/// One changed input field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field's name.
    pub name: String,
    /// The recorded value (absent for a create).
    pub before: Option<Shown>,
    /// The new value.
    pub after: Shown,
    /// What the change does: forces replacement, updates in place, or rolls the fleet.
    pub effect: Update,
}

/// What the plan does to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The logical id.
    pub id: String,
    /// The kind.
    pub kind: String,
    /// The action.
    pub action: Action,
    /// Why, one line per cause (`` `cidr_block` changed: forces replacement ``).
    pub reasons: Vec<String>,
    /// The fields that change (all of them, for a create).
    pub fields: Vec<FieldChange>,
    /// The desired inputs (references symbolic); empty for a delete.
    pub inputs: Map<String, Json>,
    /// The logical ids it depends on.
    pub dependencies: Vec<String>,
    /// The object the action starts from, when there is one.
    pub physical_id: Option<String>,
    /// Replace by destroying first.
    pub destroy_before_create: bool,
    /// Refuse to destroy.
    pub protect: bool,
}

/// What one step of the execution does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepAction {
    /// Create the resource (or the new object of a replacement).
    Create,
    /// Update it in place.
    Update,
    /// Update the fleet, then replace its instances.
    Roll,
    /// Destroy the resource's current object.
    Delete,
    /// Destroy an old object left by a create-before-destroy replacement.
    DeleteDeposed,
}

/// One step of the execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What it does.
    pub action: StepAction,
    /// The logical id.
    pub id: String,
    /// For a delete: the object it destroys.
    pub physical_id: Option<String>,
    /// The steps (indices into [`Plan::steps`]) that must finish first.
    pub after: Vec<usize>,
}

/// Which run a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// Make the cloud match the stack.
    Apply,
    /// Destroy every resource of the stack.
    Destroy,
}

/// The state a plan was made against; applying refuses when the state has moved since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    /// The state's lineage (`None` for a stack never applied).
    pub lineage: Option<String>,
    /// The state's serial.
    pub serial: u64,
}

/// The counts of a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Resources to create.
    pub create: u64,
    /// Resources to replace.
    pub replace: u64,
    /// Resources to update in place.
    pub update: u64,
    /// Resources to delete.
    pub delete: u64,
    /// Fleets to roll.
    pub roll: u64,
    /// Resources left as they are.
    pub unchanged: u64,
}

impl Summary {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.create + self.replace + self.update + self.delete + self.roll == 0
    }
}

/// A plan: the changes, their reasons, and the execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use = "a plan does nothing until it is applied"]
pub struct Plan {
    /// [`FORMAT_VERSION`] of the JSON form.
    pub format_version: String,
    /// The stack's name.
    pub stack: String,
    /// Apply or destroy.
    pub operation: Operation,
    /// The state it was made against.
    pub basis: Basis,
    /// The resources that change: creates, updates, rolls and replacements in dependency
    /// order, then deletes in reverse dependency order.
    pub changes: Vec<Change>,
    /// The execution order.
    pub steps: Vec<Step>,
    /// The counts.
    pub summary: Summary,
    /// The images the changes refer to: image id to `name version`.
    pub images: BTreeMap<String, String>,
}

impl Plan {
    /// Whether the plan changes nothing: no change, and no old object of an interrupted
    /// create-before-destroy replacement left to delete.
    pub fn is_empty(&self) -> bool {
        self.summary.is_empty() && self.steps.is_empty()
    }

    /// The change of resource `id`, if it changes.
    pub fn change(&self, id: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.id == id)
    }

    /// The plan as versioned JSON (see [`FORMAT_VERSION`]).
    pub fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }

    /// Reads a plan saved with [`Plan::to_json`].
    ///
    /// # Errors
    /// [`crate::Error::Plan`] when the JSON is not a plan, or when its major format version is
    /// not this Graven's.
    pub fn from_json(json: &str) -> Result<Plan> {
        let v: Json = serde_json::from_str(json)
            .map_err(|e| crate::Error::Plan(format!("the saved plan is not valid JSON: {e}")))?;
        let version = v.get("format_version").and_then(Json::as_str).unwrap_or("");
        let major = |s: &str| s.split('.').next().map(str::to_owned);
        if major(version) != major(FORMAT_VERSION) {
            return Err(crate::Error::Plan(format!(
                "the saved plan has format {version:?}; this Graven reads {FORMAT_VERSION}: make the plan again with this version"
            )));
        }
        serde_json::from_value(v).map_err(|e| {
            crate::Error::Plan(format!("the saved plan is damaged: {e}; make it again"))
        })
    }
}

/// Options of a plan.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Options {
    observed: Option<BTreeMap<String, Option<Observed>>>,
    images: Vec<ImageRecord>,
}

impl Options {
    /// Default options: compare with the recorded state only.
    pub fn new() -> Options {
        Options::default()
    }

    /// Also compare with what was observed in the cloud (by logical id; `None` for a resource
    /// that is gone): drift shows as changes, and a resource deleted outside Graven is created
    /// again.
    pub fn observed(mut self, observed: BTreeMap<String, Option<Observed>>) -> Options {
        self.observed = Some(observed);
        self
    }

    /// The image catalog, so the plan can name the images it pins (`web 1.5.0`).
    pub fn images(mut self, images: Vec<ImageRecord>) -> Options {
        self.images = images;
        self
    }
}

/// Plans `graph` against `state`.
///
/// # Errors
/// [`crate::Error::Protected`] when the plan would destroy a protected resource.
pub fn plan_graph(graph: &DeploymentGraph, state: &State, options: &Options) -> Result<Plan> {
    diff::plan(graph, state, options)
}

/// Plans the destruction of every resource recorded in `state`.
///
/// # Errors
/// [`crate::Error::Protected`] when a resource is protected.
pub fn destroy(state: &State) -> Result<Plan> {
    diff::destroy(state)
}
