//! Derive macros for [Graven](https://docs.rs/graven). Use them through `graven`, which
//! re-exports them; this crate's paths are not stable.
//!
//! # `#[derive(Resource)]`
//! On a struct with named fields that describes one resource kind; each field is an input.
//!
//! | attribute | where | meaning |
//! |---|---|---|
//! | `kind = "aws:ec2:Vpc"` | container | the kind's name (default: the struct's name) |
//! | `outputs = VpcOutputs` | container, required | the struct (with `#[derive(Outputs)]`) holding the outputs |
//! | `validate = path::to::fn` | container | `fn(&Self) -> Vec<graven::Problem>`, run when the graph is built |
//! | `crate = "path"` | container | where `graven` is, when renamed or re-exported |
//! | `update` | field | a change is applied in place (tags, capacity) |
//! | `roll` | field | a change is applied in place, then the fleet's instances are rolled |
//! | `secret` | field | never rendered, never stored as a value; the type must serialize as a secret reference |
//!
//! Fields without `update` or `roll` force replacement when they change: that is the default.
//!
//! # `#[derive(Outputs)]`
//! On a struct with named fields: the outputs of a kind (ids, ARNs), known after apply. It
//! generates a handle type (`VpcOutputs` -> `VpcHandle`, else `<Name>Handle`; `handle = Name`
//! overrides) with one method per output returning a typed `graven::Value` reference.
//!
//! | attribute | where | meaning |
//! |---|---|---|
//! | `handle = VpcHandle` | container | the handle type's name |
//! | `crate = "path"` | container | where `graven` is |
//! | `changes_on_update` | field | an in-place update changes this output (a template's `latest_version`) |
//!
//! # `#[derive(Stack)]`
//! On a struct with named fields; a field's name is its logical id. Fields are resources,
//! nested stacks, or `Option`, `Vec`, `BTreeMap<String, _>` of them. It generates `refs()`, a
//! struct of typed handles (`<Name>Refs`), one per field.
//!
//! | attribute | where | meaning |
//! |---|---|---|
//! | `name = "web"` | container | the stack's name (default: the struct's name in snake case) |
//! | `crate = "path"` | container | where `graven` is |
//! | `depends_on(a, b)` | field | also wait for fields `a` and `b` (checked at compile time; no cycles) |
//! | `protect` | field | refuse to destroy the resources of this field |
//! | `destroy_before_create` | field | replace by destroying first (default: create, then destroy) |

mod attr;
mod check;
mod ctxt;
mod dummies;
mod expand;
mod model;

use proc_macro::TokenStream;

/// Derives `graven::Resource` (and `graven::stack::Member`): see the crate docs.
#[proc_macro_derive(Resource, attributes(graven))]
pub fn derive_resource(input: TokenStream) -> TokenStream {
    expand::resource::derive(input.into()).into()
}

/// Derives `graven::Outputs` and the kind's typed handle: see the crate docs.
#[proc_macro_derive(Outputs, attributes(graven))]
pub fn derive_outputs(input: TokenStream) -> TokenStream {
    expand::outputs::derive(input.into()).into()
}

/// Derives `graven::Stack` and `refs()`: see the crate docs.
#[proc_macro_derive(Stack, attributes(graven))]
pub fn derive_stack(input: TokenStream) -> TokenStream {
    expand::stack::derive(input.into()).into()
}
