//! The validated model of a derive's input: a struct with named fields and their attributes.

use syn::{Attribute, Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::attr::{self, Attrs, Spec};
use crate::ctxt::Ctxt;

/// A struct with named fields.
pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: Attrs,
    pub(crate) krate: syn::Path,
    pub(crate) fields: Vec<Field<'a>>,
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
/// `derive` names the derive for messages (`Stack`). Returns `None` when the shape is wrong.
pub(crate) fn from_ast<'a>(
    cx: &mut Ctxt,
    input: &'a DeriveInput,
    derive: &str,
    container: &[Spec],
    field: &[Spec],
    field_place: &str,
) -> Option<Container<'a>> {
    let attrs = attr::parse(cx, &input.attrs, container, &format!("a `#[derive({derive})]` struct"));
    let krate = attr::crate_path(cx, &attrs);
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            format!("`#[derive({derive})]` does not support generic parameters; use concrete types"),
        );
    }
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named,
            other => {
                cx.error_spanned_by(
                    other,
                    format!("`#[derive({derive})]` needs named fields: a field's name is its identity"),
                );
                return None;
            }
        },
        Data::Enum(e) => {
            cx.error_spanned_by(
                e.enum_token,
                format!("`#[derive({derive})]` works on structs, not enums"),
            );
            return None;
        }
        Data::Union(u) => {
            cx.error_spanned_by(
                u.union_token,
                format!("`#[derive({derive})]` works on structs, not unions"),
            );
            return None;
        }
    };
    let fields = named
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
        .collect();
    Some(Container { ident: &input.ident, vis: &input.vis, attrs, krate, fields })
}
