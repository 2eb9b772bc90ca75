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
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match super::parse(input) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut cx = Ctxt::default();
    let Some(c) = model::from_ast(&mut cx, &input, "Resource", CONTAINER, FIELD, "a resource field")
    else {
        return cx.finish();
    };
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
    let Some(outputs) = c.attrs.path("outputs").cloned() else {
        cx.error_spanned_by(
            c.ident,
            "missing `#[graven(outputs = ...)]`: name the struct (with `#[derive(Outputs)]`) that holds this kind's outputs",
        );
        return cx.finish();
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
    let inserts = c.fields.iter().map(|f| {
        let (name, id) = (&f.name, f.ident);
        let assert = if f.attrs.flag("secret") {
            let ty = f.ty;
            quote_spanned!(ty.span()=> #p::assert_secret(&self.#id);)
        } else {
            quote!()
        };
        quote!(#assert map.insert(::std::string::String::from(#name), #p::input(&self.#id)?);)
    });
    let visits = c.fields.iter().map(|f| {
        let id = f.ident;
        quote!(#p::Refs::visit_refs(&self.#id, f);)
    });
    let validate = match c.attrs.path("validate") {
        Some(path) => quote!(#path(self)),
        None => quote!(::std::vec::Vec::new()),
    };
    let errors = cx.finish();

    quote! {
        #errors
        const _: () = {
            #[automatically_derived]
            impl #p::Resource for #ident {
                const KIND: &'static str = #kind;
                type Outputs = #outputs;

                fn schema() -> &'static #p::Schema {
                    static SCHEMA: #p::Schema = #p::Schema {
                        kind: #kind,
                        fields: &[#(#schema_fields),*],
                        outputs: <#outputs as #p::Outputs>::FIELDS,
                    };
                    &SCHEMA
                }

                fn inputs(&self) -> #p::serde_json::Result<#p::serde_json::Map<::std::string::String, #p::serde_json::Value>> {
                    let mut map = #p::serde_json::Map::new();
                    #(#inserts)*
                    ::std::result::Result::Ok(map)
                }

                fn visit_refs(&self, f: &mut dyn ::std::ops::FnMut(#p::RefTarget<'_>)) {
                    #(#visits)*
                }

                fn validate(&self) -> ::std::vec::Vec<#p::Problem> {
                    #validate
                }
            }

            #[automatically_derived]
            impl #p::Member for #ident {
                type Refs = <#outputs as #p::Outputs>::Handle;

                fn refs_at(path: #p::Arc<str>) -> Self::Refs {
                    <#outputs as #p::Outputs>::handle(path)
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
