//! `#[derive(Outputs)]`: the `Outputs` impl and the typed handle with one method per output.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::attr::{Shape, Spec};
use crate::ctxt::Ctxt;
use crate::model;

const CONTAINER: &[Spec] =
    &[Spec { name: "handle", shape: Shape::Path }, Spec { name: "crate", shape: Shape::Str }];

const FIELD: &[Spec] = &[Spec { name: "changes_on_update", shape: Shape::Flag }];

/// Expands `#[derive(Outputs)]`.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match super::parse(input) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut cx = Ctxt::default();
    let c = model::from_ast(&mut cx, &input, "Outputs", CONTAINER, FIELD, "an output field");
    if !c.complete {
        let dummy = crate::dummies::outputs(&c);
        let errors = cx.finish();
        return quote!(#errors #dummy);
    }
    let krate = &c.krate;
    let p = quote!(#krate::__private);
    let ident = c.ident;
    let vis = c.vis;
    let handle = if let Some(h) = c.attrs.path("handle") {
        quote!(#h)
    } else {
        let name = ident.to_string();
        let base = name.strip_suffix("Outputs").filter(|b| !b.is_empty()).unwrap_or(&name);
        let h = format_ident!("{}Handle", base);
        quote!(#h)
    };
    let handle_doc = format!("Typed references to the outputs of a resource; see [`{ident}`].");
    let fields = c.fields.iter().map(|f| {
        let name = &f.name;
        let ty = f.ty;
        let ty_name = quote!(#ty).to_string().replace(' ', "");
        let changes = f.attrs.flag("changes_on_update");
        quote!(#p::Output { name: #name, ty: #ty_name, changes_on_update: #changes })
    });
    let methods = c.fields.iter().map(|f| {
        let (name, id, ty) = (&f.name, f.ident, f.ty);
        let docs = &f.docs;
        let fallback = format!("A reference to output `{name}`, known after apply.");
        let doc = if docs.is_empty() { quote!(#[doc = #fallback]) } else { quote!(#(#docs)*) };
        quote! {
            #doc
            pub fn #id(&self) -> #p::Value<#ty> {
                #p::Value::Ref(#p::Reference::new(::std::clone::Clone::clone(&self.path), #name))
            }
        }
    });
    let reads = super::reads_fields(&c);
    let errors = cx.finish();
    quote! {
        #errors
        #[doc = #handle_doc]
        #[derive(Clone, Debug)]
        #vis struct #handle {
            path: #p::Arc<str>,
        }

        #[automatically_derived]
        impl #handle {
            /// The logical id of the resource this handle refers to.
            pub fn path(&self) -> &str {
                &self.path
            }

            #(#methods)*
        }

        const _: () = {
            #reads

            #[automatically_derived]
            impl #p::Outputs for #ident {
                type Handle = #handle;

                fn handle(path: #p::Arc<str>) -> #handle {
                    #handle { path }
                }

                const FIELDS: &'static [#p::Output] = &[#(#fields),*];
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
            pub struct LaunchTemplateOutputs {
                /// The template's id.
                pub id: LaunchTemplateId,
                #[graven(changes_on_update)]
                pub latest_version: LaunchTemplateVersion,
            }
        });
        insta::assert_snapshot!(super::super::pretty(&out));
    }
}
