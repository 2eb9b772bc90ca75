//! `#[derive(Resource)]`: the kind's name, schema, input serialization and reference visitor,
//! and its `Member` impl so it can be a stack field.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{Shape, Spec};
use crate::ctxt::Ctxt;
use crate::model;

const CONTAINER: &[Spec] = &[
    Spec { name: "kind", shape: Shape::Str },
    Spec { name: "outputs", shape: Shape::Path },
    Spec { name: "validate", shape: Shape::Path },
    Spec { name: "crate", shape: Shape::Str },
];

const FIELD: &[Spec] = &[
    Spec { name: "update", shape: Shape::Flag },
    Spec { name: "roll", shape: Shape::Flag },
    Spec { name: "secret", shape: Shape::Flag },
];

/// Expands `#[derive(Resource)]`.
// One `quote!` template for the whole expansion reads better than one split across helpers.
#[allow(clippy::too_many_lines)]
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match super::parse(input) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut cx = Ctxt::default();
    let c = model::from_ast(&mut cx, &input, "Resource", CONTAINER, FIELD, "a resource field");
    for f in &c.fields {
        if f.attrs.flag("update") && f.attrs.flag("roll") {
            if let Some(span) = f.attrs.span("roll") {
                cx.syn_error(syn::Error::new(
                    span,
                    "`roll` already implies an in-place update; keep one of `update` and `roll`",
                ));
            }
        }
    }
    let outputs = c.attrs.path("outputs").cloned();
    if outputs.is_none() && c.complete {
        cx.error_spanned_by(
            c.ident,
            format!(
                "missing `#[graven(outputs = ...)]` on resource kind `{}`; add it, naming the struct \
                 (with `#[derive(Outputs)]`) that holds the kind's outputs, e.g. \
                 `#[graven(outputs = {}Outputs)]`",
                c.ident, c.ident
            ),
        );
    }
    let Some(outputs) = outputs.filter(|_| c.complete) else {
        let dummy = crate::dummies::member(&c);
        let errors = cx.finish();
        return quote!(#errors #dummy);
    };
    let krate = &c.krate;
    let ident = c.ident;
    let kind = c.attrs.str("kind").map_or_else(|| ident.to_string(), syn::LitStr::value);
    let p = quote!(#krate::__private);

    let schema_fields = c.fields.iter().map(|f| {
        let name = &f.name;
        let update = if f.attrs.flag("roll") {
            quote!(#p::Update::Roll)
        } else if f.attrs.flag("update") {
            quote!(#p::Update::InPlace)
        } else {
            quote!(#p::Update::Replace)
        };
        let secret = f.attrs.flag("secret");
        quote!(#p::Field { name: #name, update: #update, secret: #secret })
    });
    // Per-field code is spanned on the field's type, so a type that cannot be an input (no
    // `Serialize`, no `Refs`, or not a `Secret` in a secret field) is reported on that type.
    let secrets = c.fields.iter().filter(|f| f.attrs.flag("secret")).map(|f| {
        let ty = f.ty;
        quote_spanned!(ty.span()=> #p::assert_secret::<#ty>;)
    });
    let inserts = c.fields.iter().map(|f| {
        let (name, ty, id) = (&f.name, f.ty, respan(f.ident, f.ty));
        quote_spanned! {ty.span()=>
            map.insert(::std::string::String::from(#name), #p::input::<#ty>(&self.#id)?);
        }
    });
    let visits = c.fields.iter().map(|f| {
        let (ty, id) = (f.ty, respan(f.ident, f.ty));
        quote_spanned!(ty.span()=> __visit_refs::<#ty>(&self.#id, f);)
    });
    let validate = c
        .attrs
        .path("validate")
        .map_or_else(|| quote!(::std::vec::Vec::new()), |path| quote!(#path(self)));
    // Spanned on the `outputs = ...` type, so a struct without `#[derive(Outputs)]` is
    // reported there.
    let outputs_span = outputs.span();
    let outputs_fields = quote_spanned!(outputs_span=> <#outputs as #p::Outputs>::FIELDS);
    let outputs_handle = quote_spanned!(outputs_span=> <#outputs as #p::Outputs>::Handle);
    let outputs_handle_fn = quote_spanned!(outputs_span=> <#outputs as #p::Outputs>::handle);
    let reads = super::reads_fields(&c);
    let errors = cx.finish();

    quote! {
        #errors
        const _: () = {
            #reads

            #[automatically_derived]
            impl #p::Resource for #ident {
                const KIND: &'static str = #kind;
                type Outputs = #outputs;

                fn schema() -> &'static #p::Schema {
                    static SCHEMA: #p::Schema = #p::Schema {
                        kind: #kind,
                        fields: &[#(#schema_fields),*],
                        outputs: #outputs_fields,
                    };
                    &SCHEMA
                }

                fn inputs(&self) -> #p::serde_json::Result<#p::serde_json::Map<::std::string::String, #p::serde_json::Value>> {
                    #(let _ = #secrets)*
                    let mut map = #p::serde_json::Map::new();
                    #(#inserts)*
                    ::std::result::Result::Ok(map)
                }

                fn visit_refs(&self, f: &mut dyn ::std::ops::FnMut(#p::RefTarget<'_>)) {
                    #[diagnostic::on_unimplemented(
                        message = "`{Self}` cannot be the type of a resource input: it does not implement `graven::value::Refs`",
                        label = "the type of this input",
                        note = "implement `graven::value::Refs` for `{Self}`: with an empty `visit_refs` when it holds no reference, else calling `visit_refs` on each `Value` it holds"
                    )]
                    trait __Input: #p::Refs {}
                    impl<T: ?::core::marker::Sized + #p::Refs> __Input for T {}
                    fn __visit_refs<T: ?::core::marker::Sized + __Input>(
                        value: &T,
                        f: &mut dyn ::std::ops::FnMut(#p::RefTarget<'_>),
                    ) {
                        #p::Refs::visit_refs(value, f);
                    }
                    #(#visits)*
                }

                fn validate(&self) -> ::std::vec::Vec<#p::Problem> {
                    #validate
                }
            }

            #[automatically_derived]
            impl #p::Member for #ident {
                type Refs = #outputs_handle;

                fn refs_at(path: #p::Arc<str>) -> #outputs_handle {
                    #outputs_handle_fn(path)
                }

                fn add_to(
                    &self,
                    builder: &mut #p::Builder,
                    scope: usize,
                    path: ::std::string::String,
                    inherited: &#p::Inherited,
                ) {
                    builder.add_resource(self, scope, path, inherited);
                }
            }
        };
    }
}

/// `ident` with the span of `ty`.
fn respan(ident: &syn::Ident, ty: &syn::Type) -> syn::Ident {
    syn::Ident::new(&ident.to_string(), ty.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let out = derive(quote! {
            #[graven(kind = "aws:ec2:Vpc", outputs = VpcOutputs, validate = Vpc::check)]
            pub struct Vpc {
                cidr_block: Value<Ipv4Net>,
                #[graven(update)]
                tags: Tags,
                #[graven(secret)]
                token: Option<Secret>,
            }
        });
        insta::assert_snapshot!(super::super::pretty(&out));
    }

    #[test]
    fn missing_outputs_is_one_clear_error() {
        let out = derive(quote! { struct Thing { a: u32 } }).to_string();
        assert!(out.contains("missing `#[graven(outputs = ...)]`"), "{out}");
    }
}
