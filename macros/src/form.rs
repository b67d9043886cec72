//! Which of the three forms a checked test takes, read from its signature and attributes.

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::{Attribute, ItemFn, Meta, Path};

use crate::args::{Args, Source, RUNTIME_KEYS};

/// How the test is run, and so where the check goes.
pub(crate) enum Form {
    /// An `async fn`, alone or under `#[tokio::test]`: leak-check builds the runtime.
    OwnRuntime,
    /// An `async fn` under another crate's test attribute, which runs the runtime: the check
    /// goes inside the body.
    ForeignRuntime,
    /// A sync test (or a checked sync helper); its tasks run on runtimes that outlive it.
    Sync,
}

/// The test as leak-check will rewrite it.
pub(crate) struct Test {
    pub(crate) form: Form,
    pub(crate) args: Args,
    /// The attributes to keep, in order, with the test attribute (if any) taken out.
    pub(crate) attrs: Vec<Attribute>,
    /// Where the test attribute stood, so the generated one takes its place.
    pub(crate) test_attr_at: Option<usize>,
    /// Whether to write `#[test]`: not when another crate's test attribute stays.
    pub(crate) needs_test_attr: bool,
    pub(crate) expects_panic: bool,
}

pub(crate) enum TestAttr {
    Std,
    Tokio,
    Foreign,
}

pub(crate) fn classify(path: &Path) -> Option<TestAttr> {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["test"] => Some(TestAttr::Std),
        [root, .., "test"] if *root == "core" || *root == "std" => Some(TestAttr::Std),
        ["tokio", "test"] => Some(TestAttr::Tokio),
        [_, .., "test"] => Some(TestAttr::Foreign),
        _ => None,
    }
}

pub(crate) fn is_leak_check(path: &Path) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    matches!(
        segments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["leak_check"] | ["leak_check", "leak_check"]
    )
}

/// Whether `#[tokio::test]` has already expanded this function (so the runtime it builds is gone
/// before a check after it could look). Its expansion (tokio-macros 2.x) is a sync function
/// under `#[::core::prelude::v1::test]`, written in full with its leading `::` as people never
/// write it, whose body starts by binding the test's body as an async block:
/// `let body = async { ... };`, then pins it. An attribute written between the two (serial_test's
/// `#[serial]`, test-log's) may wrap that body in its own code or put its own first, so the
/// pinning is also looked for at any depth. Another test attribute's expansion (test-log's
/// also writes `#[::core::prelude::v1::test]`) keeps a sync body as it was.
fn is_tokio_expansion(function: &ItemFn, test_attr: &Attribute) -> bool {
    let path = test_attr.path();
    let written_in_full = path.leading_colon.is_some()
        && path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .eq(["core", "prelude", "v1", "test"]);
    function.sig.asyncness.is_none()
        && written_in_full
        && (binds_body_first(function)
            || pins_the_body_as_tokio_does(function.block.to_token_stream()))
}

/// Whether `#[tokio::main]` has already expanded this function: a sync function that binds its
/// body as `let body = async { ... };` first and runs it in a block under tokio's
/// `#[allow(clippy::diverging_sub_expression, ...)]`, a lint people do not name there.
fn is_tokio_main_expansion(function: &ItemFn) -> bool {
    fn names_the_lint(tokens: proc_macro2::TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => ident == "diverging_sub_expression",
            TokenTree::Group(group) => names_the_lint(group.stream()),
            _ => false,
        })
    }
    function.sig.asyncness.is_none()
        && binds_body_first(function)
        && names_the_lint(function.block.to_token_stream())
}

/// Whether the function's first statement binds `body` to an async block, as tokio's
/// expansions do.
fn binds_body_first(function: &ItemFn) -> bool {
    match function.block.stmts.first() {
        Some(syn::Stmt::Local(local)) => {
            matches!(&local.pat, syn::Pat::Ident(binding) if binding.ident == "body")
                && matches!(
                    local.init.as_ref().map(|init| &*init.expr),
                    Some(syn::Expr::Async(_))
                )
        }
        _ => false,
    }
}

/// Whether `tokens` hold, at any depth, tokio's pinning of the test's body:
/// `let body: ::core::pin::Pin<&mut dyn ::core::future::Future<...>> = body;`, a line of its
/// expansion that people do not write. It is found wherever other attributes put it: inside
/// the closure `#[serial]` wraps the body in, or after the prologue test-log puts first.
fn pins_the_body_as_tokio_does(tokens: proc_macro2::TokenStream) -> bool {
    const PINNED: [&str; 12] = [
        "let", "body", ":", ":", ":", "core", ":", ":", "pin", ":", ":", "Pin",
    ];
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let text: Vec<String> = tokens
        .iter()
        .map(|token| match token {
            TokenTree::Group(_) => String::new(),
            other => other.to_string(),
        })
        .collect();
    text.windows(PINNED.len()).any(|window| window == PINNED)
        || tokens.iter().any(|token| match token {
            TokenTree::Group(group) => pins_the_body_as_tokio_does(group.stream()),
            _ => false,
        })
}

pub(crate) fn analyze(mut args: Args, function: &ItemFn) -> syn::Result<Test> {
    let is_async = function.sig.asyncness.is_some();
    let Attrs {
        mut kept,
        test_attr,
        test_attr_at,
        expects_panic,
    } = read_attrs(function)?;
    if test_attr.is_none() && is_tokio_main_expansion(function) {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "`#[leak_check]` below `#[tokio::main]`: the runtime it builds is dropped (and the tasks with it) before leak-check can look; put `#[leak_check]` on the test that calls this function instead",
        ));
    }
    let form = form_of(test_attr.as_ref(), is_async, &mut args)?;
    check_args_fit(&form, &args)?;

    // A sync fn with no test attribute is either under a `#[test]` that has already expanded
    // (written above `#[leak_check]`) or a checked helper: adding `#[test]` would be wrong in both.
    let needs_test_attr = match &test_attr {
        Some((TestAttr::Foreign, _)) => false,
        None => is_async,
        Some(_) => true,
    };
    // Another attribute may give the arguments (rstest's cases and fixtures): only where none
    // but these could is the error ours to give.
    let inert = |attr: &Attribute| {
        attr.path().segments.last().is_some_and(|last| {
            [
                "doc",
                "allow",
                "warn",
                "deny",
                "expect",
                "ignore",
                "should_panic",
                "cfg",
                "serial",
                "parallel",
            ]
            .iter()
            .any(|name| last.ident == name)
        })
    };
    if needs_test_attr && !function.sig.inputs.is_empty() && kept.iter().all(inert) {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "a test takes no arguments: make the values inside its body, or let `#[rstest]` (written above, with its `#[case]`s or fixtures) pass them in",
        ));
    }
    if !needs_test_attr {
        // The foreign attribute stays where it was.
        if let (Some(at), Some((_, attr))) = (test_attr_at, &test_attr) {
            kept.insert(at, attr.clone());
        }
    }
    Ok(Test {
        form,
        args,
        attrs: kept,
        test_attr_at,
        needs_test_attr,
        expects_panic,
    })
}

/// A function's attributes, with its test attribute taken out of the ones to keep.
struct Attrs {
    kept: Vec<Attribute>,
    test_attr: Option<(TestAttr, Attribute)>,
    /// Where the test attribute stood among the kept ones.
    test_attr_at: Option<usize>,
    expects_panic: bool,
}

/// Reads the function's attributes, rejecting a second `#[leak_check]`, a second test
/// attribute, and `#[leak_check]` written below an already expanded `#[tokio::test]`.
fn read_attrs(function: &ItemFn) -> syn::Result<Attrs> {
    let mut kept = Vec::new();
    let mut test_attr: Option<(TestAttr, Attribute)> = None;
    let mut test_attr_at = None;
    let mut expects_panic = false;
    for attr in &function.attrs {
        if is_leak_check(attr.path()) {
            return Err(syn::Error::new_spanned(
                attr,
                "`#[leak_check]` is given twice; keep one",
            ));
        }
        if attr.path().is_ident("should_panic") {
            expects_panic = true;
        }
        let Some(kind) = classify(attr.path()) else {
            kept.push(attr.clone());
            continue;
        };
        if let Some((_, first)) = &test_attr {
            return Err(syn::Error::new_spanned(
                attr,
                format!(
                    "a second test attribute: `#[{}]` already makes this a test; keep only one",
                    path_text(first.path())
                ),
            ));
        }
        if matches!(kind, TestAttr::Std) && is_tokio_expansion(function, attr) {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[leak_check]` must be written above `#[tokio::test]`: below it, the runtime is dropped (and the test's tasks with it) before leak-check can look",
            ));
        }
        test_attr_at = Some(kept.len());
        test_attr = Some((kind, attr.clone()));
    }
    Ok(Attrs {
        kept,
        test_attr,
        test_attr_at,
        expects_panic,
    })
}

/// The form the test takes, from its test attribute and whether it is async; a
/// `#[tokio::test]`'s arguments join `args`, since leak-check builds that runtime in its place.
fn form_of(
    test_attr: Option<&(TestAttr, Attribute)>,
    is_async: bool,
    args: &mut Args,
) -> syn::Result<Form> {
    match (test_attr, is_async) {
        (None, true) => Ok(Form::OwnRuntime),
        (Some((TestAttr::Tokio, attr)), true) => {
            args.merge(tokio_args(attr)?)?;
            Ok(Form::OwnRuntime)
        }
        (Some((TestAttr::Foreign, _)), true) => Ok(Form::ForeignRuntime),
        (Some((TestAttr::Std, attr)), true) => Err(syn::Error::new_spanned(
            attr,
            "`#[test]` cannot run an `async fn`: remove it and leak-check builds the runtime, or write `#[tokio::test]`",
        )),
        (Some((TestAttr::Tokio, attr)), false) => Err(syn::Error::new_spanned(
            attr,
            "`#[tokio::test]` needs an `async fn`: make the test `async`, or write `#[test]` for a sync test",
        )),
        (None | Some((TestAttr::Std | TestAttr::Foreign, _)), false) => Ok(Form::Sync),
    }
}

/// Rejects arguments the form cannot honour: runtime arguments where leak-check does not build
/// the runtime, and `timeout_ms` on a sync body, which cannot be stopped; then what tokio would
/// reject.
fn check_args_fit(form: &Form, args: &Args) -> syn::Result<()> {
    if let Some(span) = args.first_runtime_arg() {
        match form {
            Form::OwnRuntime => {}
            Form::Sync => {
                return Err(syn::Error::new(
                    span,
                    format!("runtime arguments ({RUNTIME_KEYS}) need an `async fn` test, whose runtime leak-check builds; a sync test runs its tasks on a runtime of its own: remove this argument, or make the test `async`"),
                ))
            }
            Form::ForeignRuntime => {
                return Err(syn::Error::new(
                    span,
                    "another test attribute runs this test's runtime: give runtime arguments to that attribute, not to `#[leak_check]`",
                ))
            }
        }
    }
    if let (Form::Sync, Some(timeout)) = (form, &args.timeout_ms) {
        return Err(syn::Error::new(
            timeout.span,
            "`timeout_ms` needs an `async fn` test: a sync body cannot be stopped from outside; make the test `async`, or remove this argument",
        ));
    }
    args.validate()
}

fn tokio_args(attr: &Attribute) -> syn::Result<Args> {
    let mut args = Args::default();
    if let Meta::List(_) = &attr.meta {
        attr.parse_nested_meta(|meta| args.parse(meta, Source::TokioTest))?;
    }
    Ok(args)
}

fn path_text(path: &Path) -> String {
    let text = quote::quote!(#path).to_string();
    text.replace(' ', "")
}
