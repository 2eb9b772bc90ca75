//! `#[derive(Stack)]`: the `Stack` and `Member` impls, the `<Name>Refs` struct of typed
//! handles and the inherent `refs()`.
//!
//! A field is dispatched on its type through the `Member` trait, never recognised by its
//! spelling, so aliases and user-defined kinds work. When a field's type is not a `Member` (a
//! `u32`), the compiler must report that once, on that type. Three things see to it:
//! - every mention of a field's type is spanned on that type, so the errors it causes are
//!   identical and the compiler shows them once;
//! - the refs struct ends with a `Sized` marker field, so a field in error does not make the
//!   whole struct unsized (which would be reported at every function that returns it);
//! - handles and graph entries go through `__Probe` (autoref specialization): for a type that is
//!   not a `Member` it falls back to a stub instead of failing a second time.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::attr::{Shape, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::dummies;
use crate::model;

const CONTAINER: &[Spec] =
    &[Spec { name: "name", shape: Shape::Str }, Spec { name: "crate", shape: Shape::Str }];

const FIELD: &[Spec] = &[
    Spec { name: "depends_on", shape: Shape::Idents },
    Spec { name: "protect", shape: Shape::Flag },
    Spec { name: "destroy_before_create", shape: Shape::Flag },
];

/// Expands `#[derive(Stack)]`.
// One `quote!` template for the whole expansion reads better than one split across helpers.
#[allow(clippy::too_many_lines)]
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let input = match super::parse(input) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let mut cx = Ctxt::default();
    let c = model::from_ast(&mut cx, &input, "Stack", CONTAINER, FIELD, "a stack field");
    if !c.complete {
        let dummy = dummies::stack(&c);
        let errors = cx.finish();
        return quote!(#errors #dummy);
    }
    let depends_on = check::depends_on(&mut cx, &c);
    let krate = &c.krate;
    let p = quote!(#krate::__private);
    let ident = c.ident;
    let vis = c.vis;
    let refs = format_ident!("{}Refs", ident);
    let refs_name = refs.to_string();
    let name = c
        .attrs
        .str("name")
        .map_or_else(|| super::snake_case(&ident.to_string()), syn::LitStr::value);
    let refs_doc = format!("Typed handles to the members of [`{ident}`], from [`{ident}::refs`].");

    let refs_fields = c.fields.iter().map(|f| {
        let (id, ty, fvis) = (f.ident, f.ty, f.vis);
        let docs = &f.docs;
        let field_ty = quote_spanned!(ty.span()=> <#ty as #p::Member>::Refs);
        quote! {
            #(#docs)*
            #fvis #id: #field_ty
        }
    });
    let refs_clones = c.fields.iter().map(|f| {
        let (ty, id) = (f.ty, respan(f.ident, f.ty));
        quote_spanned!(ty.span()=> #id: ::core::clone::Clone::clone(&self.#id))
    });
    let refs_debug = c.fields.iter().map(|f| {
        let (ty, id, name) = (f.ty, respan(f.ident, f.ty), &f.name);
        quote_spanned!(ty.span()=> .field(#name, &self.#id))
    });
    // Built in each function that returns the refs struct (`refs()` and `refs_at`), so that a
    // field in error taints that function's body, where the error is already reported, rather
    // than being reported again on its return type.
    let refs_inits: Vec<TokenStream> = c
        .fields
        .iter()
        .map(|f| {
            let (ty, id, name) = (f.ty, respan(f.ident, f.ty), &f.name);
            quote_spanned! {ty.span()=>
                #id: (&&__Probe::<#ty>(::core::marker::PhantomData))
                    .refs_at(#p::Arc::from(#p::join(path, #name)))
            }
        })
        .collect();
    let adds = c.fields.iter().zip(&depends_on).map(|(f, deps)| {
        let (ty, id, name) = (f.ty, f.ident, &f.name);
        let probe = quote_spanned!(ty.span()=> (&&__Probe::<#ty>(::core::marker::PhantomData)));
        let protect = f.attrs.flag("protect");
        let dbc = f.attrs.flag("destroy_before_create");
        if deps.is_empty() && !protect && !dbc {
            quote!(#probe.add_to(&self.#id, builder, scope, #p::join(&path, #name), inherited);)
        } else {
            quote! {
                #probe.add_to(
                    &self.#id,
                    builder,
                    scope,
                    #p::join(&path, #name),
                    &inherited.with_field(&path, &[#(#deps),*], #protect, #dbc),
                );
            }
        }
    });
    let probe = probe(&p);
    let reads = super::reads_fields(&c);
    let errors = cx.finish();

    quote! {
        #errors
        #[doc = #refs_doc]
        // A stack's code uses the handles it needs, not all of them.
        #[allow(dead_code)]
        #vis struct #refs {
            #(#refs_fields,)*
            __graven_sized: ::core::marker::PhantomData<()>,
        }

        const _: () = {
            #reads

            #probe

            #[automatically_derived]
            impl #ident {
                /// Typed handles to this stack's members: `refs().vpc.id()` is a reference to
                /// the `id` output of field `vpc`. A misspelt field or an output of the wrong
                /// type does not compile.
                #vis fn refs() -> #refs {
                    let path = "";
                    #refs { #(#refs_inits,)* __graven_sized: ::core::marker::PhantomData }
                }
            }

            #[automatically_derived]
            impl ::core::clone::Clone for #refs {
                fn clone(&self) -> Self {
                    #refs { #(#refs_clones,)* __graven_sized: ::core::marker::PhantomData }
                }
            }

            #[automatically_derived]
            impl ::core::fmt::Debug for #refs {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#refs_name)#(#refs_debug)*.finish()
                }
            }

            #[automatically_derived]
            impl #p::Member for #ident {
                type Refs = #refs;

                fn refs_at(path: #p::Arc<str>) -> #refs {
                    let path: &str = &path;
                    #refs { #(#refs_inits,)* __graven_sized: ::core::marker::PhantomData }
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

/// `ident` with the span of `ty`.
fn respan(ident: &syn::Ident, ty: &syn::Type) -> syn::Ident {
    syn::Ident::new(&ident.to_string(), ty.span())
}

/// The field probe: `(&&__Probe::<T>(PhantomData)).refs_at(path)` calls `T`'s `Member` impl
/// when there is one, else the fallback, which exists only so that a type that is not a
/// `Member` is reported once (on the field's type, by the refs struct) and not once per use.
fn probe(p: &TokenStream) -> TokenStream {
    quote! {
        struct __Probe<T>(::core::marker::PhantomData<T>);

        trait __IsMember<T> {
            type Refs;
            fn refs_at(&self, path: #p::Arc<str>) -> Self::Refs;
            fn add_to(
                &self,
                member: &T,
                builder: &mut #p::Builder,
                scope: usize,
                path: ::std::string::String,
                inherited: &#p::Inherited,
            );
        }

        impl<T: #p::Member> __IsMember<T> for &__Probe<T> {
            type Refs = <T as #p::Member>::Refs;

            #[inline]
            fn refs_at(&self, path: #p::Arc<str>) -> Self::Refs {
                <T as #p::Member>::refs_at(path)
            }

            #[inline]
            fn add_to(
                &self,
                member: &T,
                builder: &mut #p::Builder,
                scope: usize,
                path: ::std::string::String,
                inherited: &#p::Inherited,
            ) {
                <T as #p::Member>::add_to(member, builder, scope, path, inherited);
            }
        }

        trait __NotMember<T> {
            fn refs_at(&self, _: #p::Arc<str>) {}
            fn add_to(
                &self,
                _: &T,
                _: &mut #p::Builder,
                _: usize,
                _: ::std::string::String,
                _: &#p::Inherited,
            ) {
            }
        }

        impl<T> __NotMember<T> for __Probe<T> {}
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

    #[test]
    fn an_enum_gets_stub_impls_beside_its_error() {
        let out = derive(quote! { enum E { A(Vpc) } }).to_string();
        assert!(out.contains("not enums"), "{out}");
        assert!(out.contains(":: graven :: __private :: Stack for E"), "{out}");
    }
}
