//! The validated model of a derive's input: a struct with named fields and their attributes.

use syn::{Attribute, Data, DeriveInput, Fields, Generics, Ident, Type, Visibility};

use crate::attr::{self, Attrs, Spec};
use crate::ctxt::Ctxt;

/// A struct with named fields.
pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) generics: &'a Generics,
    pub(crate) attrs: Attrs,
    pub(crate) krate: syn::Path,
    pub(crate) fields: Vec<Field<'a>>,
    /// False when the input cannot be expanded (an enum, a tuple struct, generic parameters):
    /// the derive then emits its errors with stub impls only (see `dummies`).
    pub(crate) complete: bool,
}

/// One named field.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) name: String,
    pub(crate) ty: &'a Type,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: Attrs,
    pub(crate) docs: Vec<&'a Attribute>,
}

/// Reads `input` as a struct with named fields, parsing container and field attributes.
/// `derive` names the derive for messages (`Stack`). Every problem is recorded in `cx`; the
/// container is marked incomplete when the shape is wrong.
pub(crate) fn from_ast<'a>(
    cx: &mut Ctxt,
    input: &'a DeriveInput,
    derive: &str,
    container: &[Spec],
    field: &[Spec],
    field_place: &str,
) -> Container<'a> {
    let attrs =
        attr::parse(cx, &input.attrs, container, &format!("a `#[derive({derive})]` struct"));
    let krate = attr::crate_path(cx, &attrs);
    let mut complete = true;
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics.params,
            format!(
                "`#[derive({derive})]` does not support generic parameters; use concrete types \
                 (a stack's shape must be known when it is compiled)"
            ),
        );
        complete = false;
    }
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(named),
            other => {
                cx.error_spanned_by(
                    other,
                    format!(
                        "`#[derive({derive})]` needs named fields, because a field's name is its \
                         logical id; write `struct {} {{ name: Type, ... }}`",
                        input.ident
                    ),
                );
                None
            }
        },
        Data::Enum(e) => {
            let hint = match derive {
                "Stack" => "; use a struct, with an `Option` field for each alternative",
                "Resource" => "; a resource kind is a struct whose fields are its inputs",
                _ => "; the outputs are a struct with one field per output",
            };
            cx.error_spanned_by(
                e.enum_token,
                format!(
                    "`#[derive({derive})]` works on structs with named fields, not enums{hint}"
                ),
            );
            None
        }
        Data::Union(u) => {
            cx.error_spanned_by(
                u.union_token,
                format!("`#[derive({derive})]` works on structs with named fields, not unions"),
            );
            None
        }
    };
    let fields = named.map_or_else(Vec::new, |named| {
        named
            .named
            .iter()
            .filter_map(|f| {
                let ident = f.ident.as_ref()?;
                Some(Field {
                    ident,
                    name: ident.to_string().trim_start_matches("r#").to_owned(),
                    ty: &f.ty,
                    vis: &f.vis,
                    attrs: attr::parse(cx, &f.attrs, field, field_place),
                    docs: f.attrs.iter().filter(|a| a.path().is_ident("doc")).collect(),
                })
            })
            .collect()
    });
    complete &= named.is_some();
    Container {
        ident: &input.ident,
        vis: &input.vis,
        generics: &input.generics,
        attrs,
        krate,
        fields,
        complete,
    }
}
