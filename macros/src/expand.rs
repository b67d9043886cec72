//! Writes the checked test: the same function, its body handed to `::leak_check::__private`.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{FnArg, Ident, ItemFn, Pat, PatIdent, ReturnType, Signature, Type};

use crate::args::{Args, Flavor};
use crate::form::{Form, Test};

pub(crate) fn expand(test: Test, mut function: ItemFn) -> TokenStream {
    let options = options(&test, &function);
    let output = output_type(&function.sig.output);
    let body = match test.form {
        Form::OwnRuntime => {
            let builder = builder(&test.args);
            let pinned = pinned_body(&function, output.as_ref());
            quote! {{
                #pinned
                ::leak_check::__private::run_test(#builder, #options, __leak_check_body)
            }}
        }
        Form::ForeignRuntime => {
            let pinned = pinned_body(&function, output.as_ref());
            quote! {{
                #pinned
                ::leak_check::__private::check_async(#options, __leak_check_body).await
            }}
        }
        Form::Sync => {
            let annotation = output.map(|ty| quote!(-> #ty));
            let block = &function.block;
            quote! {{
                ::leak_check::__private::check_sync(#options, move || #annotation #block)
            }}
        }
    };
    if matches!(test.form, Form::OwnRuntime) {
        function.sig.asyncness = None;
    }
    let attrs = attributes(&test);
    let vis = &function.vis;
    let sig = &function.sig;
    let body = in_braces_of(&function.block, body);
    quote!(#(#attrs)* #vis #sig #body)
}

/// `body` (one block) in braces that carry the spans of the function's own: the function then
/// stays the user's for rustc's lints, so that a checked function nothing calls (a sync test
/// whose `#[test]` was forgotten) is still reported as never used.
fn in_braces_of(block: &syn::Block, body: TokenStream) -> TokenStream {
    let mut braces = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, body);
    braces.set_span(block.brace_token.span.join());
    braces.into_token_stream()
}

/// The kept attributes, with the standard test attribute where the old one stood.
fn attributes(test: &Test) -> Vec<syn::Attribute> {
    let mut attrs = test.attrs.clone();
    if test.needs_test_attr {
        let at = test.test_attr_at.unwrap_or(0).min(attrs.len());
        attrs.insert(at, syn::parse_quote!(#[::core::prelude::v1::test]));
    }
    attrs
}

fn options(test: &Test, function: &ItemFn) -> TokenStream {
    let name = function.sig.ident.to_string();
    let args = &test.args;
    let millis = |method: &str, value: &Option<crate::args::Spanned<u64>>| {
        value.as_ref().map(|v| {
            let method = syn::Ident::new(method, v.span);
            let ms = proc_macro2::Literal::u64_unsuffixed(v.value);
            quote!(.#method(#ms))
        })
    };
    let strings = |method: &str, value: &Option<crate::args::Spanned<Vec<syn::LitStr>>>| {
        value.as_ref().map(|v| {
            let method = syn::Ident::new(method, v.span);
            let items = &v.value;
            quote!(.#method(&[#(#items),*]))
        })
    };
    let grace = millis("grace_ms", &args.grace_ms);
    let timeout = millis("timeout_ms", &args.timeout_ms);
    let sites = strings("allow_sites", &args.allow_sites);
    let names = strings("allow_names", &args.allow_names);
    let untracked = args.allow_untracked.as_ref().map(|v| {
        let allow = v.value;
        quote!(.allow_untracked(#allow))
    });
    let expects_panic = test.expects_panic.then(|| quote!(.expects_panic()));
    // A sync function without a test attribute is a helper a test calls (or a test whose
    // `#[test]`, written above, has expanded already).
    let helper =
        (matches!(test.form, Form::Sync) && test.test_attr_at.is_none()).then(|| quote!(.helper()));
    // Whatever the test returns is its result: a `Result` error it returned shows beside the
    // report. Which types are results is left to `__private`, which tells them apart by the
    // concrete type here (a return type that is `impl Trait` cannot be named, nor be a `Result`).
    let describe_error = output_type(&function.sig.output).map(|ty| {
        quote! {
            .describe_error(|__leak_check_output: &#ty| {
                #[allow(unused_imports)]
                use ::leak_check::__private::{DescribeOther as _, DescribeResult as _};
                (&::leak_check::__private::ResultOf(__leak_check_output)).error_text()
            })
        }
    });
    quote! {
        ::leak_check::__private::Options::new(::core::module_path!(), #name)
            #grace #timeout #sites #names #untracked #expects_panic #helper #describe_error
    }
}

/// The test's return type, when it can be written down (not `impl Trait`).
fn output_type(output: &ReturnType) -> Option<TokenStream> {
    match output {
        ReturnType::Default => Some(quote!(())),
        ReturnType::Type(_, ty) if contains_impl_trait(ty) => None,
        ReturnType::Type(_, ty) => Some(quote!(#ty)),
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    ty.to_token_stream()
        .into_iter()
        .any(|token| matches!(&token, proc_macro2::TokenTree::Ident(ident) if ident == "impl"))
}

/// The body as a pinned future whose output type is fixed. Where the return type can be
/// named, the body becomes a nested `async fn` that declares it and takes the test's arguments
/// (rstest's cases), so that `?`, `return` and the last expression coerce as in the original
/// function: `Err(Box::new(error))` for a `Result<(), Box<dyn Error>>`, where an async block
/// (as `#[tokio::test]` writes) would infer `Box<MyError>`.
fn pinned_body(function: &ItemFn, output: Option<&TokenStream>) -> TokenStream {
    let block = &function.block;
    let (Some(ty), Some(args)) = (output, forwarded_args(&function.sig)) else {
        return quote! {
            let __leak_check_body = async move #block;
            let __leak_check_body = ::core::pin::pin!(__leak_check_body);
        };
    };
    let params = function.sig.inputs.iter().map(|input| match input {
        FnArg::Typed(typed) => {
            let pat = &typed.pat;
            let ty = &typed.ty;
            quote!(#pat: #ty)
        }
        FnArg::Receiver(receiver) => quote!(#receiver),
    });
    quote! {
        #[allow(clippy::unused_async)]
        async fn __leak_check_test(#(#params),*) -> #ty #block
        let __leak_check_body = __leak_check_test(#(#args),*);
        let __leak_check_body = ::core::pin::pin!(__leak_check_body);
        let __leak_check_body: ::core::pin::Pin<&mut dyn ::core::future::Future<Output = #ty>> =
            __leak_check_body;
    }
}

/// The test's arguments, to pass on to the nested function: only plain names can be (`n: u32`,
/// `mut n: u32`), not patterns.
fn forwarded_args(sig: &Signature) -> Option<Vec<&Ident>> {
    sig.inputs
        .iter()
        .map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(PatIdent {
                    by_ref: None,
                    subpat: None,
                    ident,
                    ..
                }) => Some(ident),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect()
}

fn builder(args: &Args) -> TokenStream {
    let krate = args.crate_path.as_ref().map_or_else(
        || quote!(::leak_check::__private::tokio),
        |p| p.value.to_token_stream(),
    );
    let new = match args.flavor() {
        Flavor::CurrentThread => quote!(new_current_thread),
        Flavor::MultiThread => quote!(new_multi_thread),
    };
    let mut calls = Vec::new();
    if let Some(n) = &args.worker_threads {
        let n = proc_macro2::Literal::usize_unsuffixed(n.value);
        calls.push(quote!(.worker_threads(#n)));
    }
    if let Some(paused) = &args.start_paused {
        let paused = &paused.value;
        calls.push(quote!(.start_paused(#paused)));
    }
    if let Some(policy) = &args.unhandled_panic {
        let variant = match policy.value.value().as_str() {
            "shutdown_runtime" => quote!(ShutdownRuntime),
            _ => quote!(Ignore),
        };
        calls.push(quote!(.unhandled_panic(#krate::runtime::UnhandledPanic::#variant)));
    }
    quote! {{
        let mut __leak_check_builder = #krate::runtime::Builder::#new();
        __leak_check_builder.enable_all() #(#calls)*;
        __leak_check_builder
    }}
}
