//! Stacks: the [`Stack`] trait, and the [`Member`] trait that every stack field implements.
//!
//! A stack is a struct with `#[derive(Stack)]`. Each field is a *member*: a resource, a nested
//! stack, or an `Option`, `Vec` or `BTreeMap<String, _>` of members. A field's name is its
//! logical id; nested members get paths (`network.vpc`, `web[0]`, `web["a"]`).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::Result;
use crate::graph::{Builder, DeploymentGraph};

/// Options a stack field passes down to every resource inside it.
#[derive(Debug, Clone, Default)]
pub struct Inherited {
    /// Paths (absolute) of the members every resource inside depends on.
    pub depends_on: Vec<Arc<str>>,
    /// Refuse to destroy.
    pub protect: bool,
    /// Destroy the old resource before creating its replacement.
    pub destroy_before_create: bool,
}

impl Inherited {
    /// These options, plus those of a field: `depends_on` names sibling fields in `scope`.
    #[must_use]
    pub fn with_field(
        &self,
        scope: &str,
        depends_on: &[&str],
        protect: bool,
        destroy_before_create: bool,
    ) -> Inherited {
        let mut out = self.clone();
        out.depends_on.extend(depends_on.iter().map(|d| Arc::from(join(scope, d))));
        out.protect |= protect;
        out.destroy_before_create |= destroy_before_create;
        out
    }
}

/// Joins a stack's path and a field name: `join("network", "vpc") == "network.vpc"`.
pub fn join(scope: &str, field: &str) -> String {
    if scope.is_empty() { field.to_owned() } else { format!("{scope}.{field}") }
}

/// Something that can be a field of a stack.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a stack",
    label = "not a resource, a stack, or a collection of them",
    note = "a stack's fields must be resources (`#[derive(Resource)]`), stacks (`#[derive(Stack)]`), or `Option`, `Vec` or `BTreeMap<String, _>` of them"
)]
pub trait Member {
    /// The typed handle(s) `Stack::refs()` gives for this member.
    type Refs;

    /// The handles of the member at `path`.
    fn refs_at(path: Arc<str>) -> Self::Refs;

    /// Adds the member's resources to the graph. `scope` is the path of the enclosing stack,
    /// against which the references its handles made are resolved.
    fn add_to(&self, builder: &mut Builder, scope: usize, path: String, inherited: &Inherited);
}

/// A stack: a struct with `#[derive(Stack)]`.
pub trait Stack: Member {
    /// The stack's name (used for state, tags and the CLI); `#[graven(name = "...")]`.
    const NAME: &'static str;

    /// Adds every field to the graph; `scope` is this stack's scope in the builder.
    fn add_fields(&self, builder: &mut Builder, scope: usize, inherited: &Inherited);

    /// Builds the stack's deployment graph.
    ///
    /// # Errors
    /// Invalid inputs, dangling references and cycles, each naming the resources at fault.
    fn graph(&self) -> Result<DeploymentGraph>
    where
        Self: Sized,
    {
        DeploymentGraph::build(self)
    }
}

impl<T: Member> Member for Option<T> {
    type Refs = T::Refs;

    fn refs_at(path: Arc<str>) -> Self::Refs {
        T::refs_at(path)
    }

    fn add_to(&self, builder: &mut Builder, scope: usize, path: String, inherited: &Inherited) {
        if let Some(m) = self {
            m.add_to(builder, scope, path, inherited);
        }
    }
}

impl<T: Member> Member for Vec<T> {
    type Refs = Indexed<T>;

    fn refs_at(path: Arc<str>) -> Self::Refs {
        Indexed { path, member: PhantomData }
    }

    fn add_to(&self, builder: &mut Builder, scope: usize, path: String, inherited: &Inherited) {
        for (i, m) in self.iter().enumerate() {
            m.add_to(builder, scope, format!("{path}[{i}]"), inherited);
        }
    }
}

impl<T: Member> Member for BTreeMap<String, T> {
    type Refs = Keyed<T>;

    fn refs_at(path: Arc<str>) -> Self::Refs {
        Keyed { path, member: PhantomData }
    }

    fn add_to(&self, builder: &mut Builder, scope: usize, path: String, inherited: &Inherited) {
        for (k, m) in self {
            m.add_to(builder, scope, format!("{path}[{k:?}]"), inherited);
        }
    }
}

/// The handles of a `Vec` field: `r.web.at(0).id()`.
pub struct Indexed<T> {
    path: Arc<str>,
    member: PhantomData<fn() -> T>,
}

impl<T> Clone for Indexed<T> {
    fn clone(&self) -> Self {
        Indexed { path: self.path.clone(), member: PhantomData }
    }
}

impl<T> std::fmt::Debug for Indexed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Indexed({})", self.path)
    }
}

impl<T: Member> Indexed<T> {
    /// The handle of element `i` (`web[0]`).
    pub fn at(&self, i: usize) -> T::Refs {
        T::refs_at(format!("{}[{i}]", self.path).into())
    }
}

/// The handles of a `BTreeMap<String, _>` field: `r.web.key("a").id()`.
pub struct Keyed<T> {
    path: Arc<str>,
    member: PhantomData<fn() -> T>,
}

impl<T> Clone for Keyed<T> {
    fn clone(&self) -> Self {
        Keyed { path: self.path.clone(), member: PhantomData }
    }
}

impl<T> std::fmt::Debug for Keyed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyed({})", self.path)
    }
}

impl<T: Member> Keyed<T> {
    /// The handle of the entry at `key` (`web["a"]`).
    pub fn key(&self, key: &str) -> T::Refs {
        T::refs_at(format!("{}[{key:?}]", self.path).into())
    }
}
