//! # Graven: typed immutable infrastructure
//!
//! Declare a stack as a Rust struct, let the compiler check its wiring, review its plan in a
//! snapshot test, and roll it out to AWS EC2 and EC2 Auto Scaling (or to the embedded `local`
//! cloud) with replacement semantics: what changes is replaced, not patched.
//!
//! ```
//! use graven::prelude::*;
//! use graven::aws::ec2::{Subnet, Vpc};
//!
//! #[derive(Stack)]
//! struct Network {
//!     vpc: Vpc,
//!     subnet: Subnet,
//! }
//!
//! # fn main() -> graven::Result<()> {
//! let r = Network::refs();
//! let network = Network {
//!     vpc: Vpc::new("10.0.0.0/16".parse()?),
//!     subnet: Subnet::new(r.vpc.id(), "10.0.1.0/24".parse()?, "eu-west-2a"),
//! };
//! let graph = network.graph()?;
//! assert_eq!(graph.node("subnet").unwrap().dependencies, vec![0]);
//! # Ok(()) }
//! ```
//!
//! ## Crate organization
//! The pure core (no I/O, deterministic):
//! - The typed DSL: [`value`] (literals, typed references, secrets), [`id`] (typed cloud ids),
//!   [`resource`] (the [`Resource`] and [`Outputs`] traits), [`stack`] (the [`Stack`] trait),
//!   and the derives `#[derive(Resource)]`, `#[derive(Outputs)]` and `#[derive(Stack)]`.
//! - [`graph`]: the deployment graph a stack compiles into.
//! - [`aws`]: the catalog of AWS resource kinds as typed models, validated.
//! - [`rollout`]: how a fleet's instances are replaced.
//! - [`release`]: the inputs of one deployment (variables, the image catalog).
//! - [`state`]: what Graven records about a stack (and the [`state::Store`]s that keep it).
//! - [`plan`](mod@plan): what applying a stack will do, and why ([`plan()`] is the entry point).
//! - [`testing`]: helpers for snapshot tests of plans.
//!
//! The async layer:
//! - [`provider`]: the interface to a cloud; [`local`] is the embedded simulated cloud, and
//!   `aws::provider` (feature `aws`) the real one.
//! - [`engine`]: applies a plan with bounded parallelism, retries and crash-safe state.
//! - [`cli`]: the command line of a stack program.
//! - [`error`]: [`enum@Error`], with the resource, field or call at fault.
//!
//! ## Features
//! - `aws`: the AWS provider (aws-sdk-ec2, aws-sdk-autoscaling) and the S3 state store. Off by
//!   default: the SDK takes minutes to compile, and the `local` target needs none of it.

#![forbid(unsafe_code)]

pub mod aws;
pub mod cli;
pub mod engine;
pub mod error;
pub mod graph;
pub mod id;
pub mod local;
pub mod plan;
pub mod provider;
pub mod release;
pub mod resource;
pub mod rollout;
pub mod stack;
pub mod state;
pub mod testing;
pub mod value;

pub use error::{Error, Problem, Result};
pub use graph::DeploymentGraph;
pub use plan::Plan;
pub use release::Release;
pub use resource::{Outputs, Resource};
pub use stack::Stack;
pub use value::{Secret, Value};

/// Plans `stack` against `state`: what applying it would do, and why.
///
/// Uses the default [`plan::Options`] plus the built-in image catalog to name images.
///
/// # Errors
/// The stack's graph cannot be built (invalid inputs, dangling references, cycles), or the
/// plan would destroy a protected resource.
pub fn plan<S: Stack>(stack: &S, state: &state::State) -> Result<Plan> {
    plan::plan_graph(
        &stack.graph()?,
        state,
        &plan::Options::new().images(release::builtin_images()),
    )
}

/// `#[derive(Outputs)]`: the typed outputs of a resource kind, and their handle.
pub use graven_macros::Outputs;
/// `#[derive(Resource)]`: a struct that describes one resource kind. See the book's
/// "Resources" chapter for every attribute.
pub use graven_macros::Resource;
/// `#[derive(Stack)]`: a struct whose fields are resources and nested stacks.
pub use graven_macros::Stack;

/// The names a stack program needs: `use graven::prelude::*;`.
pub mod prelude {
    pub use crate::error::{Error, Result};
    pub use crate::id::*;
    pub use crate::release::Release;
    pub use crate::resource::{Outputs as _, Resource as _};
    pub use crate::rollout::Rollout;
    pub use crate::stack::Stack as _;
    pub use crate::value::{Secret, Value};
    pub use graven_macros::{Outputs, Resource, Stack};
}

/// Items the derives' generated code uses. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::Problem;
    pub use crate::graph::Builder;
    pub use crate::resource::{Field, Output, Outputs, Resource, Schema, Update};
    pub use crate::stack::{Inherited, Member, Stack, join};
    pub use crate::value::{RefTarget, Reference, Refs, Value};
    pub use serde_json;
    pub use std::sync::Arc;

    /// The types a `#[graven(secret)]` field may have: they serialize as a reference, never a value.
    #[diagnostic::on_unimplemented(
        message = "a `secret` field must hold a `graven::Secret` or `Option<graven::Secret>`, not `{Self}`",
        note = "a secret is a reference resolved at apply time, so its value never reaches state or plans"
    )]
    pub trait SecretField {}
    impl SecretField for crate::value::Secret {}
    impl SecretField for Option<crate::value::Secret> {}

    /// Compile-time check that a secret field holds a [`SecretField`].
    pub fn assert_secret<T: SecretField>(_: &T) {}

    /// Serializes one input field (the derive's `inputs()` calls it per field).
    pub fn input<T: serde::Serialize>(v: &T) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(v)
    }
}

/// The book's chapters, whose Rust samples are compiled and run as doctests (`mdbook test`
/// cannot link external crates; PyO3 does the same).
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../../book/src/introduction.md")]
    mod introduction {}
    #[doc = include_str!("../../book/src/resources.md")]
    mod resources {}
    #[doc = include_str!("../../book/src/stacks.md")]
    mod stacks {}
    #[doc = include_str!("../../book/src/attributes.md")]
    mod attributes {}
    #[doc = include_str!("../../book/src/design.md")]
    mod design {}
    #[doc = include_str!("../../book/src/getting-started.md")]
    mod getting_started {}
    #[doc = include_str!("../../book/src/plans.md")]
    mod plans {}
    #[doc = include_str!("../../book/src/testing.md")]
    mod testing {}
    #[doc = include_str!("../../book/src/applying.md")]
    mod applying {}
    #[doc = include_str!("../../book/src/rollouts.md")]
    mod rollouts {}
}
