//! Code generation, one file per derive. Each `derive` parses, checks, and expands; on errors
//! it still expands what is valid so the user sees the real error, not a cascade.

pub(crate) mod outputs;
pub(crate) mod resource;
pub(crate) mod stack;

/// Converts `UpperCamel` to `snake_case`.
pub(crate) fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A function that reads every field of the struct. Graven does read them, in the impls it
/// generates, but the dead-code lint ignores `#[automatically_derived]` impls, so without it a
/// private field of a stack, a resource or an outputs struct would warn "field is never read".
/// `#[allow(dead_code)]` makes the function a root of the lint's analysis.
pub(crate) fn reads_fields(c: &crate::model::Container<'_>) -> proc_macro2::TokenStream {
    let ident = c.ident;
    let fields = c.fields.iter().map(|f| f.ident);
    quote::quote! {
        #[allow(dead_code)]
        fn __graven_reads_fields(value: &#ident) {
            let _ = (#(&value.#fields,)*);
        }
    }
}

/// Parses the derive input, or returns the parse error as tokens.
pub(crate) fn parse(
    input: proc_macro2::TokenStream,
) -> Result<syn::DeriveInput, proc_macro2::TokenStream> {
    syn::parse2(input).map_err(|e| e.to_compile_error())
}

#[cfg(test)]
pub(crate) fn pretty(tokens: &proc_macro2::TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}
