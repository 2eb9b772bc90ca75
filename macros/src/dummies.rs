//! Stub impls emitted beside the errors of an input that cannot be expanded (clap's
//! `dummies.rs`): the type still implements the derive's traits, so its uses elsewhere (a stack
//! field, `Network::refs()`) compile and the user sees the one real error, not a cascade.

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::Container;

/// `Member` with no handles and no resources.
pub(crate) fn member(c: &Container<'_>) -> TokenStream {
    let krate = &c.krate;
    let p = quote!(#krate::__private);
    let ident = c.ident;
    let (impl_generics, ty_generics, where_clause) = c.generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #p::Member for #ident #ty_generics #where_clause {
                type Refs = ();
                fn refs_at(_: #p::Arc<str>) {}
                fn add_to(
                    &self,
                    _: &mut #p::Builder,
                    _: usize,
                    _: ::std::string::String,
                    _: &#p::Inherited,
                ) {
                }
            }
        };
    }
}

/// `Member`, `Stack` and an inherent `refs()`.
pub(crate) fn stack(c: &Container<'_>) -> TokenStream {
    let krate = &c.krate;
    let p = quote!(#krate::__private);
    let ident = c.ident;
    let vis = c.vis;
    let (impl_generics, ty_generics, where_clause) = c.generics.split_for_impl();
    let member = member(c);
    quote! {
        #member
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #ident #ty_generics #where_clause {
                #vis fn refs() {}
            }

            #[automatically_derived]
            impl #impl_generics #p::Stack for #ident #ty_generics #where_clause {
                const NAME: &'static str = "";
                fn add_fields(&self, _: &mut #p::Builder, _: usize, _: &#p::Inherited) {}
            }
        };
    }
}

/// `Outputs` with no outputs and a unit handle.
pub(crate) fn outputs(c: &Container<'_>) -> TokenStream {
    let krate = &c.krate;
    let p = quote!(#krate::__private);
    let ident = c.ident;
    let (impl_generics, ty_generics, where_clause) = c.generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #p::Outputs for #ident #ty_generics #where_clause {
                type Handle = ();
                fn handle(_: #p::Arc<str>) {}
                const FIELDS: &'static [#p::Output] = &[];
            }
        };
    }
}
