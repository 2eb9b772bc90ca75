//! Values of inputs: literals, typed references to other resources' outputs, and secrets.
//!
//! A [`Value<T>`] is what a resource's input field holds. A reference is typed by the output it
//! reads: `r.vpc.id()` is a `Value<VpcId>`, so it fits a field that wants a VPC id and nothing
//! else. Serialized, a reference stays symbolic (`{"$ref": ["vpc", "id"]}`: the logical id and
//! the output) until the engine resolves it at apply time; a secret is `{"$secret": "name"}` and
//! its value is never serialized at all.
//!
//! The serialized reference is `{"$ref": ["vpc", "id"]}`: the logical id, then the output.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// The key under which a serialized reference is stored.
pub const REF_KEY: &str = "$ref";
/// The key under which a serialized secret reference is stored.
pub const SECRET_KEY: &str = "$secret";

/// A reference to one output of one resource, as the graph sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefTarget<'a> {
    /// The logical id of the resource, relative to the stack the handle was made in.
    pub resource: &'a str,
    /// The output's name (`id`, `latest_version`).
    pub output: &'static str,
}

/// A typed reference to the output of another resource.
pub struct Reference<T> {
    resource: Arc<str>,
    output: &'static str,
    ty: PhantomData<fn() -> T>,
}

impl<T> Reference<T> {
    /// A reference to output `output` of the resource at logical id `resource`.
    ///
    /// Generated handles call this; users get references from `Stack::refs()`.
    pub fn new(resource: Arc<str>, output: &'static str) -> Self {
        Reference { resource, output, ty: PhantomData }
    }

    /// The logical id this reference points at.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The output it reads.
    pub fn output(&self) -> &'static str {
        self.output
    }
}

impl<T> Clone for Reference<T> {
    fn clone(&self) -> Self {
        Reference { resource: self.resource.clone(), output: self.output, ty: PhantomData }
    }
}

impl<T> std::fmt::Debug for Reference<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.resource, self.output)
    }
}

impl<T> PartialEq for Reference<T> {
    fn eq(&self, other: &Self) -> bool {
        self.resource == other.resource && self.output == other.output
    }
}

/// A reference to a secret, resolved at apply time and never stored.
///
/// The local target reads secret `name` from the environment variable `GRAVEN_SECRET_<NAME>`;
/// plans render it as `(secret)` and state keeps only its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Secret {
    name: String,
}

impl Secret {
    /// A reference to the secret called `name`.
    pub fn named(name: impl Into<String>) -> Self {
        Secret { name: name.into() }
    }

    /// The secret's name (never its value).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(SECRET_KEY, &self.name)?;
        m.end()
    }
}

/// An input value: a literal, a typed reference to another resource's output, or a secret.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<T> {
    /// A value known when the stack is declared.
    Literal(T),
    /// The output of another resource, known after it is applied.
    Ref(Reference<T>),
    /// A secret, injected at apply time.
    Secret(Secret),
}

impl<T> Value<T> {
    /// The literal, if this value is one.
    pub fn literal(&self) -> Option<&T> {
        match self {
            Value::Literal(v) => Some(v),
            _ => None,
        }
    }

    /// The reference, if this value is one.
    pub fn reference(&self) -> Option<&Reference<T>> {
        match self {
            Value::Ref(r) => Some(r),
            _ => None,
        }
    }
}

impl<T> From<Reference<T>> for Value<T> {
    fn from(r: Reference<T>) -> Self {
        Value::Ref(r)
    }
}

impl<T> From<Secret> for Value<T> {
    fn from(s: Secret) -> Self {
        Value::Secret(s)
    }
}

macro_rules! literal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Value<$t> {
            fn from(v: $t) -> Self {
                Value::Literal(v)
            }
        }
        impl From<&$t> for Value<$t> {
            fn from(v: &$t) -> Self {
                Value::Literal(v.clone())
            }
        }
    )*};
}

literal_from!(
    String,
    crate::id::VpcId,
    crate::id::SubnetId,
    crate::id::InternetGatewayId,
    crate::id::RouteTableId,
    crate::id::SecurityGroupId,
    crate::id::LaunchTemplateId,
    crate::id::ImageId,
    crate::id::InstanceId,
    crate::id::AutoScalingGroupName,
    crate::id::Arn,
    crate::id::LaunchTemplateVersion
);

impl From<&str> for Value<String> {
    fn from(v: &str) -> Self {
        Value::Literal(v.to_owned())
    }
}

impl<T: Serialize> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Literal(v) => v.serialize(s),
            Value::Ref(r) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(REF_KEY, &[&*r.resource, r.output])?;
                m.end()
            }
            Value::Secret(secret) => secret.serialize(s),
        }
    }
}

/// Reads a serialized reference back: `Some((resource, output))` when `v` is one.
pub fn as_reference(v: &serde_json::Value) -> Option<(&str, &str)> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    match obj.get(REF_KEY)?.as_array()?.as_slice() {
        [resource, output] => Some((resource.as_str()?, output.as_str()?)),
        _ => None,
    }
}

/// Reads a serialized secret back: `Some(name)` when `v` is one.
pub fn as_secret(v: &serde_json::Value) -> Option<&str> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get(SECRET_KEY)?.as_str()
}

/// Builds the serialized form of a reference (the form [`as_reference`] reads).
pub fn reference_json(resource: &str, output: &str) -> serde_json::Value {
    serde_json::json!({ REF_KEY: [resource, output] })
}

/// Walks the references held by a value. `#[derive(Resource)]` calls it on every input field.
///
/// Implemented for [`Value`], the std containers and the plain types a resource uses. A custom
/// field type that holds no reference implements it with an empty body; one that holds values
/// forwards to them.
pub trait Refs {
    /// Calls `f` once per reference held.
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>));
}

impl<T> Refs for Value<T> {
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>)) {
        if let Value::Ref(r) = self {
            f(RefTarget { resource: &r.resource, output: r.output });
        }
    }
}

impl<T: Refs> Refs for Option<T> {
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>)) {
        if let Some(v) = self {
            v.visit_refs(f);
        }
    }
}

impl<T: Refs> Refs for Vec<T> {
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>)) {
        for v in self {
            v.visit_refs(f);
        }
    }
}

impl<T: Refs> Refs for Box<T> {
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>)) {
        (**self).visit_refs(f);
    }
}

impl<K, T: Refs> Refs for std::collections::BTreeMap<K, T> {
    fn visit_refs(&self, f: &mut dyn FnMut(RefTarget<'_>)) {
        for v in self.values() {
            v.visit_refs(f);
        }
    }
}

macro_rules! no_refs {
    ($($t:ty),*) => {$(
        impl Refs for $t {
            fn visit_refs(&self, _: &mut dyn FnMut(RefTarget<'_>)) {}
        }
    )*};
}

no_refs!(
    bool,
    u8,
    u16,
    u32,
    u64,
    i32,
    i64,
    f64,
    String,
    Secret,
    ipnet::Ipv4Net,
    ipnet::IpNet,
    semver::Version,
    std::time::Duration
);
