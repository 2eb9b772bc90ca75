//! `#[derive(Stack)]`: the `Stack` and `Member` impls, the `<Name>Refs` struct of typed
//! handles and the inherent `refs()`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::attr::{Shape, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::model;

const CONTAINER: &[Spec] = &[
    Spec { name: "name", shape: Shape::Str },
    Spec { name: "crate", shape: Shape::Str },
];

const FIELD: &[Spec] = &[
    Spec { name: "depends_on", shape: Shape::Idents },
    Spec { name: "protect", shape: Shape::Flag },
    Spec { name: "destroy_before_create", shape: Shape::Flag },
];

/// Expands `#[derive(Stack)]`.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match super::parse(input) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut cx = Ctxt::default();
    let Some(c) = model::from_ast(&mut cx, &input, "Stack", CONTAINER, FIELD, "a stack field")
    else {
        return cx.finish();
    };
    let depends_on = check::depends_on(&mut cx, &c);
    let krate = &c.krate;
    let p = quote!(#krate::__private);
    let ident = c.ident;
    let vis = c.vis;
    let refs = format_ident!("{}Refs", ident);
    let name = c
        .attrs
        .str("name")
        .map_or_else(|| super::snake_case(&ident.to_string()), syn::LitStr::value);
    let refs_doc = format!("Typed handles to the members of [`{ident}`], from [`{ident}::refs`].");

    let refs_fields = c.fields.iter().map(|f| {
        let (id, ty, fvis) = (f.ident, f.ty, f.vis);
        let docs = &f.docs;
        quote! {
            #(#docs)*
            #fvis #id: <#ty as #p::Member>::Refs
        }
    });
    let refs_inits = c.fields.iter().map(|f| {
        let (id, ty, name) = (f.ident, f.ty, &f.name);
        quote!(#id: <#ty as #p::Member>::refs_at(#p::Arc::from(#p::join(&path, #name))))
    });
    let adds = c.fields.iter().zip(&depends_on).map(|(f, deps)| {
        let (id, name) = (f.ident, &f.name);
        let protect = f.attrs.flag("protect");
        let dbc = f.attrs.flag("destroy_before_create");
        if deps.is_empty() && !protect && !dbc {
            quote!(#p::Member::add_to(&self.#id, builder, scope, #p::join(&path, #name), inherited);)
        } else {
            quote! {
                #p::Member::add_to(
                    &self.#id,
                    builder,
                    scope,
                    #p::join(&path, #name),
                    &inherited.with_field(&path, &[#(#deps),*], #protect, #dbc),
                );
            }
        }
    });
    let errors = cx.finish();

    quote! {
        #errors
        #[doc = #refs_doc]
        #[derive(Clone, Debug)]
        #vis struct #refs {
            #(#refs_fields,)*
        }

        #[automatically_derived]
        impl #ident {
            /// Typed handles to this stack's members: `refs().vpc.id()` is a reference to the
            /// `id` output of field `vpc`. A misspelt field or an output of the wrong type does
            /// not compile.
            #vis fn refs() -> #refs {
                <Self as #p::Member>::refs_at(#p::Arc::from(""))
            }
        }

        const _: () = {
            #[automatically_derived]
            impl #p::Member for #ident {
                type Refs = #refs;

                fn refs_at(path: #p::Arc<str>) -> #refs {
                    #refs { #(#refs_inits,)* }
                }

                fn add_to(
                    &self,
                    builder: &mut #p::Builder,
                    scope: usize,
                    path: ::std::string::String,
                    inherited: &#p::Inherited,
                ) {
                    let scope = builder.enter_scope(scope, path);
                    #p::Stack::add_fields(self, builder, scope, inherited);
                }
            }

            #[automatically_derived]
            impl #p::Stack for #ident {
                const NAME: &'static str = #name;

                fn add_fields(&self, builder: &mut #p::Builder, scope: usize, inherited: &#p::Inherited) {
                    let path = ::std::borrow::ToOwned::to_owned(builder.scope_path(scope));
                    #(#adds)*
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
            /// The web tier.
            #[graven(name = "web")]
            pub struct Web {
                pub vpc: Vpc,
                #[graven(depends_on(vpc), protect)]
                pub subnets: Vec<Subnet>,
                #[graven(destroy_before_create)]
                pub network: Option<Network>,
            }
        });
        insta::assert_snapshot!(super::super::pretty(&out));
    }

    #[test]
    fn reports_every_error_at_once() {
        let out = derive(quote! {
            struct S {
                #[graven(depends_on(vpcc), protec)]
                a: A,
                #[graven(depends_on(a))]
                b: B,
                #[graven(depends_on(b), protect, protect)]
                c: C,
            }
        })
        .to_string();
        assert!(out.contains("unknown field `vpcc` in `depends_on`"), "{out}");
        assert!(out.contains("did you mean `protect`?"), "{out}");
        assert!(out.contains("duplicate `protect` attribute"), "{out}");
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
    }

    #[test]
    fn reports_a_declared_cycle_with_its_path() {
        let out = derive(quote! {
            struct S {
                #[graven(depends_on(c))]
                a: A,
                #[graven(depends_on(a))]
                b: B,
                #[graven(depends_on(b))]
                c: C,
            }
        })
        .to_string();
        assert!(out.contains("`a` -> `c` -> `b` -> `a`"), "{out}");
    }
}
