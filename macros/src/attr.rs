//! Parsing of `#[graven(...)]` attributes against the list of what each place accepts.

use proc_macro2::Span;
use syn::{Attribute, Ident, LitStr};

use crate::ctxt::{Ctxt, list, suggest};

/// The shape of an attribute's value.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    /// `protect`
    Flag,
    /// `name = "web"`
    Str,
    /// `outputs = VpcOutputs`
    Path,
    /// `depends_on(vpc, subnet)`
    Idents,
}

/// One accepted attribute.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
}

/// A parsed attribute value.
pub(crate) enum Value {
    Flag,
    Str(LitStr),
    Path(syn::Path),
    Idents(Vec<Ident>),
}

/// The attributes found on one item, each with the span of its name.
#[derive(Default)]
pub(crate) struct Attrs {
    entries: Vec<(&'static str, Span, Value)>,
}

impl Attrs {
    /// Whether flag `name` is set.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _, _)| *n == name)
    }

    /// The string value of `name`.
    pub(crate) fn str(&self, name: &str) -> Option<&LitStr> {
        self.entries.iter().find_map(|(n, _, v)| match v {
            Value::Str(s) if *n == name => Some(s),
            _ => None,
        })
    }

    /// The path value of `name`.
    pub(crate) fn path(&self, name: &str) -> Option<&syn::Path> {
        self.entries.iter().find_map(|(n, _, v)| match v {
            Value::Path(p) if *n == name => Some(p),
            _ => None,
        })
    }

    /// The identifiers of `name(...)`.
    pub(crate) fn idents(&self, name: &str) -> &[Ident] {
        self.entries
            .iter()
            .find_map(|(n, _, v)| match v {
                Value::Idents(i) if *n == name => Some(i.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// The span of attribute `name`, if present.
    pub(crate) fn span(&self, name: &str) -> Option<Span> {
        self.entries.iter().find(|(n, _, _)| *n == name).map(|(_, s, _)| *s)
    }
}

/// Where each attribute belongs, to say so when one is given in the wrong place.
const ELSEWHERE: &[(&str, &str)] = &[
    ("kind", "a `#[derive(Resource)]` struct"),
    ("outputs", "a `#[derive(Resource)]` struct"),
    ("validate", "a `#[derive(Resource)]` struct"),
    ("update", "a field of a `#[derive(Resource)]` struct"),
    ("roll", "a field of a `#[derive(Resource)]` struct"),
    ("secret", "a field of a `#[derive(Resource)]` struct"),
    ("handle", "a `#[derive(Outputs)]` struct"),
    ("changes_on_update", "a field of a `#[derive(Outputs)]` struct"),
    ("name", "a `#[derive(Stack)]` struct"),
    ("depends_on", "a field of a `#[derive(Stack)]` struct"),
    ("protect", "a field of a `#[derive(Stack)]` struct"),
    ("destroy_before_create", "a field of a `#[derive(Stack)]` struct"),
];

/// Parses every `#[graven(...)]` in `attrs`; `place` names where they are ("a stack field").
pub(crate) fn parse(cx: &mut Ctxt, attrs: &[Attribute], specs: &[Spec], place: &str) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("graven")) {
        let result = attr.parse_nested_meta(|meta| {
            let Some(ident) = meta.path.get_ident() else {
                return Err(meta.error("expected an attribute name"));
            };
            let name = ident.to_string();
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                let known = list(specs.iter().map(|s| s.name));
                let hint = match ELSEWHERE.iter().find(|(n, _)| *n == name) {
                    Some((_, there)) => format!("`{name}` goes on {there}; "),
                    None => suggest(&name, specs.iter().map(|s| s.name))
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default(),
                };
                let message = if specs.is_empty() {
                    format!("unknown attribute `{name}` on {place}; {hint}{place} takes no attributes")
                } else {
                    format!("unknown attribute `{name}` on {place}; {hint}attributes here are {known}")
                };
                cx.error_spanned_by(ident, message);
                // Skip whatever value follows so the rest of the list still parses.
                if meta.input.peek(syn::Token![=]) {
                    let _: syn::Expr = meta.value()?.parse()?;
                } else if meta.input.peek(syn::token::Paren) {
                    let _ = meta.parse_nested_meta(|m| {
                        let _ = m.value().and_then(syn::parse::ParseBuffer::parse::<syn::Expr>);
                        Ok(())
                    });
                }
                return Ok(());
            };
            let value = match spec.shape {
                Shape::Flag => {
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        return Err(meta.error(format!("`{name}` takes no value; write `{name}`")));
                    }
                    Value::Flag
                }
                Shape::Str => {
                    let value = meta.value().map_err(|e| {
                        syn::Error::new(e.span(), format!("`{name}` takes a string: write `{name} = \"...\"`"))
                    })?;
                    Value::Str(value.parse::<LitStr>().map_err(|e| {
                        syn::Error::new(e.span(), format!("`{name}` takes a string: write `{name} = \"...\"`"))
                    })?)
                }
                Shape::Path => {
                    let value = meta.value().map_err(|e| {
                        syn::Error::new(e.span(), format!("`{name}` takes a type: write `{name} = SomeType`"))
                    })?;
                    Value::Path(value.parse::<syn::Path>().map_err(|e| {
                        syn::Error::new(e.span(), format!("`{name}` takes a type: write `{name} = SomeType`"))
                    })?)
                }
                Shape::Idents => {
                    if !meta.input.peek(syn::token::Paren) {
                        return Err(syn::Error::new(
                            ident.span(),
                            format!("`{name}` takes a list of field names: write `{name}(field, other_field)`"),
                        ));
                    }
                    let mut idents = Vec::new();
                    meta.parse_nested_meta(|m| {
                        match m.path.get_ident() {
                            Some(i) if m.input.is_empty() || m.input.peek(syn::Token![,]) => {
                                idents.push(i.clone());
                            }
                            _ => {
                                return Err(syn::Error::new_spanned(
                                    &m.path,
                                    format!(
                                        "`{name}` takes field names of this stack: write `{name}(field, other_field)`"
                                    ),
                                ));
                            }
                        }
                        Ok(())
                    })?;
                    Value::Idents(idents)
                }
            };
            if out.entries.iter().any(|(n, _, _)| *n == spec.name) {
                cx.error_spanned_by(
                    ident,
                    format!("duplicate `{name}` attribute; give it once"),
                );
            } else {
                out.entries.push((spec.name, ident.span(), value));
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    out
}

/// The `crate = "..."` path, or `::graven`.
pub(crate) fn crate_path(cx: &mut Ctxt, attrs: &Attrs) -> syn::Path {
    match attrs.str("crate") {
        Some(s) => s.parse::<syn::Path>().unwrap_or_else(|e| {
            cx.error_spanned_by(s, format!("`crate` must be a path such as `\"::graven\"`: {e}"));
            syn::parse_quote!(::graven)
        }),
        None => syn::parse_quote!(::graven),
    }
}
