//! The `#[leak_check]` attribute of the [leak-check](https://docs.rs/leak-check) crate.
//!
//! Use it through `leak_check::leak_check`, which documents it. This crate only rewrites the
//! test function; everything it generates calls into `::leak_check::__private`.

#![warn(missing_docs)]

mod args;
mod expand;
mod form;
mod module;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use syn::spanned::Spanned;

use crate::args::{Args, Source};

/// Checks a test for leaked tokio tasks. See `leak_check::leak_check` for the documentation.
#[proc_macro_attribute]
pub fn leak_check(args: TokenStream, item: TokenStream) -> TokenStream {
    leak_check_impl(args.into(), item.into()).into()
}

fn leak_check_impl(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let function = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Fn(function)) => function,
        Ok(syn::Item::Mod(module)) => return module::expand(args, module),
        Ok(other) => {
            let error = syn::Error::new(
                other.span(),
                "`#[leak_check]` goes on a test function (an `async fn`, or a `#[test] fn`) or on an inline module of tests",
            );
            return with_error(item, error);
        }
        Err(error) => return with_error(item, error),
    };
    let mut parsed = Args::default();
    let parser = syn::meta::parser(|meta| parsed.parse(meta, Source::LeakCheck));
    let test = syn::parse::Parser::parse2(parser, args)
        .and_then(|()| reject_off(&parsed))
        .and_then(|()| form::analyze(parsed, &function));
    match test {
        Ok(test) => expand::expand(test, function),
        Err(error) => with_error(plain_function(function), error),
    }
}

/// `off` on a test is read by the module macro, which removes it; one that reaches a function's
/// own expansion stands outside any checked module.
fn reject_off(args: &Args) -> syn::Result<()> {
    match args.off {
        Some(span) => Err(syn::Error::new(
            span,
            "`off` only works inside a module checked by `#[leak_check]`, to opt one test out of the module's check: this test is in none, and it is not checked without `#[leak_check]`, so remove the attribute",
        )),
        None => Ok(()),
    }
}

/// The function without its test attributes, so that a mistake in the attribute shows one error,
/// not a cascade, while IDEs still see the function.
fn plain_function(mut function: syn::ItemFn) -> TokenStream2 {
    function.attrs.retain(|attr| {
        let last = attr.path().segments.last().map(|s| s.ident.to_string());
        !matches!(
            last.as_deref(),
            Some("test" | "should_panic" | "ignore" | "leak_check")
        )
    });
    quote::quote!(#[allow(dead_code)] #function)
}

fn with_error(mut tokens: TokenStream2, error: syn::Error) -> TokenStream2 {
    tokens.extend(error.into_compile_error());
    tokens
}
