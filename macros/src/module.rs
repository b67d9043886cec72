//! `#[leak_check(...)]` on an inline module: every test in it, nested modules included, is
//! checked as if `#[leak_check(...)]` stood above it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::spanned::Spanned;
use syn::{Attribute, Item, ItemFn, ItemMod, Meta};

use crate::args::{Args, Source};
use crate::form::{classify, is_leak_check};

/// Rewrites the module; its errors (each at its token) follow it, so the module is always
/// emitted and one mistake does not cascade.
pub(crate) fn expand(args: TokenStream, mut module: ItemMod) -> TokenStream {
    let mut errors = Vec::new();
    let mut parsed = Args::default();
    let parser = syn::meta::parser(|meta| parsed.parse(meta, Source::Module { nested: false }));
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        errors.push(error);
        // The tests are still rewritten (with no module controls), so that no `off` on them
        // adds an error of its own.
        parsed = Args::default();
    }
    match module.content.as_mut() {
        Some((_, items)) => rewrite_items(&parsed, items, &mut errors),
        None => errors.push(out_of_line(&module)),
    }
    let mut tokens = module.into_token_stream();
    if let Some(error) = errors.into_iter().reduce(|mut all, one| {
        all.combine(one);
        all
    }) {
        tokens.extend(error.into_compile_error());
    }
    tokens
}

fn out_of_line(module: &ItemMod) -> syn::Error {
    let name = &module.ident;
    let (mod_token, semi) = (&module.mod_token, &module.semi);
    syn::Error::new_spanned(
        quote!(#mod_token #name #semi),
        format!(
            "`#[leak_check]` cannot see the tests of `mod {name};`, whose items are in another file: write the module inline, `mod {name} {{ ... }}`, or put `#[leak_check]` on each test in that file"
        ),
    )
}

fn rewrite_items(module_args: &Args, items: &mut [Item], errors: &mut Vec<syn::Error>) {
    for item in items {
        match item {
            Item::Fn(function) => rewrite_fn(module_args, function, errors),
            Item::Mod(nested) => rewrite_nested(module_args, nested, errors),
            _ => {}
        }
    }
}

/// A nested module: its tests are checked too, under its own `#[leak_check(...)]` (whose keys
/// win over the outer module's) if it has one; `#[leak_check(off)]` opts it out whole.
fn rewrite_nested(outer: &Args, module: &mut ItemMod, errors: &mut Vec<syn::Error>) {
    let mut args = Args::default();
    if let Some(at) = module.attrs.iter().position(|a| is_leak_check(a.path())) {
        let attr = module.attrs.remove(at);
        match parse_attr(&attr, Source::Module { nested: true }) {
            Ok(parsed) => args = parsed,
            Err(error) => errors.push(error),
        }
        if let Some(off) = args.off {
            if args.first_arg_besides_off().is_some() {
                errors.push(off_with_arguments(off));
            }
            return;
        }
    }
    let args = args.over(outer);
    match module.content.as_mut() {
        Some((_, items)) => rewrite_items(&args, items, errors),
        None => errors.push(out_of_line(module)),
    }
}

/// A test gets `#[leak_check(...)]` with its own arguments and the module's it does not set;
/// a function that is not a test is left alone.
fn rewrite_fn(module_args: &Args, function: &mut ItemFn, errors: &mut Vec<syn::Error>) {
    let own_at = function.attrs.iter().position(|a| is_leak_check(a.path()));
    if own_at.is_none() && !is_test(function) {
        return;
    }
    let is_async = function.sig.asyncness.is_some();
    let Some(at) = own_at else {
        let controls = module_args.controls_not_in(&Args::default(), is_async);
        let attr: Attribute = syn::parse_quote!(#[::leak_check::leak_check(#(#controls),*)]);
        function.attrs.insert(insertion_point(function), attr);
        return;
    };
    let own = &function.attrs[at];
    // A mistake in the test's own arguments is left for its own expansion to report, at the
    // token; the module adds nothing to it.
    let Ok(own_args) = parse_attr(own, Source::LeakCheck) else {
        return;
    };
    if let Some(off) = own_args.off {
        if own_args.first_arg_besides_off().is_some() {
            errors.push(off_with_arguments(off));
        }
        function.attrs.remove(at);
        return;
    }
    let controls = module_args.controls_not_in(&own_args, is_async);
    let own_tokens = match &own.meta {
        Meta::List(list) => list.tokens.clone(),
        _ => TokenStream::new(),
    };
    let ends_with_comma = matches!(
        own_tokens.clone().into_iter().last(),
        Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == ','
    );
    let separator =
        (!own_tokens.is_empty() && !controls.is_empty() && !ends_with_comma).then(|| quote!(,));
    let span = own.span();
    function.attrs[at] = syn::parse_quote_spanned! {span=>
        #[::leak_check::leak_check(#own_tokens #separator #(#controls),*)]
    };
}

fn parse_attr(attr: &Attribute, source: Source) -> syn::Result<Args> {
    let mut args = Args::default();
    match &attr.meta {
        Meta::Path(_) => {}
        Meta::List(_) => attr.parse_nested_meta(|meta| args.parse(meta, source))?,
        Meta::NameValue(value) => return Err(syn::Error::new_spanned(
            value,
            "`#[leak_check]` takes its arguments in parentheses: `#[leak_check(grace_ms = 250)]`",
        )),
    }
    Ok(args)
}

fn off_with_arguments(off: Span) -> syn::Error {
    syn::Error::new(
        off,
        "`off` opts this out of its module's check, so the other arguments here would do nothing: write `#[leak_check(off)]` alone, or remove `off`",
    )
}

/// Whether the function carries a test attribute: `#[test]`, `#[tokio::test]`, another crate's
/// `#[x::test]`, or rstest's `#[rstest]`.
fn is_test(function: &ItemFn) -> bool {
    function
        .attrs
        .iter()
        .any(|attr| classify(attr.path()).is_some() || is_rstest(attr))
}

fn is_rstest(attr: &Attribute) -> bool {
    let path = attr.path();
    path.segments.last().is_some_and(|s| s.ident == "rstest")
        && path.segments.len() <= 2
        && path.segments.first().is_some_and(|s| s.ident == "rstest")
}

/// Where the generated attribute goes: first, so that it stands above `#[tokio::test]` and
/// other test attributes; but under `#[rstest]`, below its `#[case]`s (rstest gives the
/// attributes above a `#[case]` to that case alone, and those below the last one to every case).
fn insertion_point(function: &ItemFn) -> usize {
    let Some(rstest) = function.attrs.iter().position(is_rstest) else {
        return 0;
    };
    let last_case = function.attrs.iter().rposition(|attr| {
        attr.path()
            .segments
            .first()
            .is_some_and(|s| s.ident == "case")
    });
    rstest.max(last_case.unwrap_or(0)) + 1
}
