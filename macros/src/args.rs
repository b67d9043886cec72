//! The arguments of `#[leak_check(...)]` and of the `#[tokio::test(...)]` it replaces.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{LitBool, LitInt, LitStr, Path};

pub(crate) const RUNTIME_KEYS: &str =
    "`flavor`, `worker_threads`, `start_paused`, `crate`, `unhandled_panic`";
/// leak-check's own controls: the only arguments a module takes.
pub(crate) const CONTROL_KEYS: &str =
    "`grace_ms`, `timeout_ms`, `allow_sites`, `allow_names`, `allow_untracked`";
const ALL_KEYS: &str = "`flavor`, `worker_threads`, `start_paused`, `crate`, `unhandled_panic`, \
    `grace_ms`, `timeout_ms`, `allow_sites`, `allow_names`, `allow_untracked`, and, on a test \
    inside a checked module, `off`";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
}

/// A value with the span of the argument that set it, for errors that point at it.
#[derive(Clone)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) flavor: Option<Spanned<Flavor>>,
    pub(crate) worker_threads: Option<Spanned<usize>>,
    pub(crate) start_paused: Option<Spanned<LitBool>>,
    pub(crate) crate_path: Option<Spanned<Path>>,
    pub(crate) unhandled_panic: Option<Spanned<LitStr>>,
    pub(crate) grace_ms: Option<Spanned<u64>>,
    pub(crate) timeout_ms: Option<Spanned<u64>>,
    pub(crate) allow_sites: Option<Spanned<Vec<LitStr>>>,
    pub(crate) allow_names: Option<Spanned<Vec<LitStr>>>,
    pub(crate) allow_untracked: Option<Spanned<bool>>,
    /// `off`: a test (or a nested module) inside a checked module opts out of its check.
    pub(crate) off: Option<Span>,
}

/// Where a list of arguments was written: leak-check's own on a function, on a module, or
/// `#[tokio::test]`'s.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    LeakCheck,
    /// `#[leak_check(...)]` on a module: leak-check's controls only, and `off` when the module
    /// is nested in a checked one.
    Module {
        nested: bool,
    },
    TokioTest,
}

impl Args {
    /// Parses one argument into `self`; `source` says which attribute it came from, since
    /// `grace_ms` only belongs to leak-check's own.
    pub(crate) fn parse(&mut self, meta: ParseNestedMeta<'_>, source: Source) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(|ident| ident.to_string())
            .unwrap_or_default();
        let span = meta
            .path
            .get_ident()
            .map_or_else(Span::call_site, |i| i.span());
        match source {
            Source::LeakCheck => {}
            Source::Module { nested } => module_takes(&meta, &key, nested)?,
            Source::TokioTest => tokio_test_takes(&meta, &key)?,
        }
        match key.as_str() {
            "off" => self.parse_off(&meta, span),
            "flavor" => set(&mut self.flavor, &key, flavor(&meta)?, span),
            "worker_threads" => set(&mut self.worker_threads, &key, worker_threads(&meta)?, span),
            "start_paused" => {
                let lit: LitBool = value(&meta, "start_paused = true")?;
                set(&mut self.start_paused, &key, lit, span)
            }
            "crate" => set(&mut self.crate_path, &key, crate_path(&meta)?, span),
            "unhandled_panic" => {
                let lit = unhandled_panic(&meta)?;
                set(&mut self.unhandled_panic, &key, lit, span)
            }
            "grace_ms" => {
                let ms = millis(&meta, "grace_ms = 250")?;
                set(&mut self.grace_ms, &key, ms, span)
            }
            "timeout_ms" => {
                let ms = millis(&meta, "timeout_ms = 30000")?;
                if ms == 0 {
                    return Err(syn::Error::new(
                        span,
                        "`timeout_ms = 0` would fail every test that waits for anything: give the longest a body may run, like `timeout_ms = 30000`, or leave it out for no limit",
                    ));
                }
                set(&mut self.timeout_ms, &key, ms, span)
            }
            "allow_sites" => {
                let list = strings(
                    &meta,
                    "allow_sites = [\"src/metrics.rs\", \"*/background/*\"]",
                )?;
                set(&mut self.allow_sites, &key, list, span)
            }
            "allow_untracked" => {
                let lit: LitBool = value(&meta, "allow_untracked = true")?;
                set(&mut self.allow_untracked, &key, lit.value, span)
            }
            "allow_names" => {
                let list = strings(&meta, "allow_names = [\"metrics-flusher\"]")?;
                set(&mut self.allow_names, &key, list, span)
            }
            _ => Err(meta.error(format!("unknown argument; expected one of {ALL_KEYS}"))),
        }
    }

    /// `off`, a bare word, given once.
    fn parse_off(&mut self, meta: &ParseNestedMeta<'_>, span: Span) -> syn::Result<()> {
        if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
            return Err(meta.error("`off` takes no value: write `#[leak_check(off)]`"));
        }
        if self.off.is_some() {
            return Err(meta.error("`off` is given twice; keep one"));
        }
        self.off = Some(span);
        Ok(())
    }

    /// Adds the arguments of `#[tokio::test(...)]`; one given in both places is an error.
    pub(crate) fn merge(&mut self, other: Args) -> syn::Result<()> {
        merge_one(&mut self.flavor, other.flavor, "flavor")?;
        merge_one(
            &mut self.worker_threads,
            other.worker_threads,
            "worker_threads",
        )?;
        merge_one(&mut self.start_paused, other.start_paused, "start_paused")?;
        merge_one(&mut self.crate_path, other.crate_path, "crate")?;
        merge_one(
            &mut self.unhandled_panic,
            other.unhandled_panic,
            "unhandled_panic",
        )?;
        Ok(())
    }

    /// The span of the first argument other than `off`, if any.
    pub(crate) fn first_arg_besides_off(&self) -> Option<Span> {
        self.first_runtime_arg().or_else(|| {
            [
                self.grace_ms.as_ref().map(|a| a.span),
                self.timeout_ms.as_ref().map(|a| a.span),
                self.allow_sites.as_ref().map(|a| a.span),
                self.allow_names.as_ref().map(|a| a.span),
                self.allow_untracked.as_ref().map(|a| a.span),
            ]
            .into_iter()
            .flatten()
            .next()
        })
    }

    /// A nested module's controls over those of the module around it: per key, the nested
    /// module's win. Modules take no runtime arguments, so there are none to merge.
    pub(crate) fn over(mut self, outer: &Args) -> Args {
        fn keep<T: Clone>(own: &mut Option<Spanned<T>>, outer: &Option<Spanned<T>>) {
            if own.is_none() {
                own.clone_from(outer);
            }
        }
        keep(&mut self.grace_ms, &outer.grace_ms);
        keep(&mut self.timeout_ms, &outer.timeout_ms);
        keep(&mut self.allow_sites, &outer.allow_sites);
        keep(&mut self.allow_names, &outer.allow_names);
        keep(&mut self.allow_untracked, &outer.allow_untracked);
        self
    }

    /// The controls of a module that a test's own arguments (`own`) do not set, written as
    /// arguments of `#[leak_check(...)]`, with the module's spans: per key, the test's win. A
    /// module's `timeout_ms` goes to async tests only, since a sync body cannot be stopped.
    pub(crate) fn controls_not_in(&self, own: &Args, is_async: bool) -> Vec<TokenStream> {
        let millis = |key: &str, value: &Option<Spanned<u64>>, own: bool| {
            value.as_ref().filter(|_| !own).map(|v| {
                let key = Ident::new(key, v.span);
                let ms = LitInt::new(&v.value.to_string(), v.span);
                quote!(#key = #ms)
            })
        };
        let strings = |key: &str, value: &Option<Spanned<Vec<LitStr>>>, own: bool| {
            value.as_ref().filter(|_| !own).map(|v| {
                let key = Ident::new(key, v.span);
                let items = &v.value;
                quote!(#key = [#(#items),*])
            })
        };
        let untracked = self
            .allow_untracked
            .as_ref()
            .filter(|_| own.allow_untracked.is_none())
            .map(|v| {
                let key = Ident::new("allow_untracked", v.span);
                let allow = LitBool::new(v.value, v.span);
                quote!(#key = #allow)
            });
        [
            millis("grace_ms", &self.grace_ms, own.grace_ms.is_some()),
            millis(
                "timeout_ms",
                &self.timeout_ms,
                own.timeout_ms.is_some() || !is_async,
            ),
            strings("allow_sites", &self.allow_sites, own.allow_sites.is_some()),
            strings("allow_names", &self.allow_names, own.allow_names.is_some()),
            untracked,
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    pub(crate) fn flavor(&self) -> Flavor {
        self.flavor
            .as_ref()
            .map_or(Flavor::CurrentThread, |f| f.value)
    }

    /// The span of the first runtime argument given, if any.
    pub(crate) fn first_runtime_arg(&self) -> Option<Span> {
        [
            self.flavor.as_ref().map(|a| a.span),
            self.worker_threads.as_ref().map(|a| a.span),
            self.start_paused.as_ref().map(|a| a.span),
            self.crate_path.as_ref().map(|a| a.span),
            self.unhandled_panic.as_ref().map(|a| a.span),
        ]
        .into_iter()
        .flatten()
        .next()
    }

    /// Rejects combinations tokio would reject.
    pub(crate) fn validate(&self) -> syn::Result<()> {
        let multi = self.flavor() == Flavor::MultiThread;
        if let (false, Some(arg)) = (multi, &self.worker_threads) {
            return Err(syn::Error::new(
                arg.span,
                "`worker_threads` needs the multi-thread runtime: add `flavor = \"multi_thread\"`",
            ));
        }
        if let (true, Some(arg)) = (multi, &self.start_paused) {
            return Err(syn::Error::new(
                arg.span,
                "`start_paused` needs the current-thread runtime: remove `flavor = \"multi_thread\"`",
            ));
        }
        if let (true, Some(arg)) = (multi, &self.unhandled_panic) {
            return Err(syn::Error::new(
                arg.span,
                "`unhandled_panic` needs the current-thread runtime: remove `flavor = \"multi_thread\"`",
            ));
        }
        Ok(())
    }
}

/// The arguments each test chooses for the runtime leak-check builds for it.
fn is_runtime_key(key: &str) -> bool {
    matches!(
        key,
        "flavor" | "worker_threads" | "start_paused" | "crate" | "unhandled_panic"
    )
}

/// leak-check's own controls, which `#[tokio::test]` does not know.
fn is_control_key(key: &str) -> bool {
    matches!(
        key,
        "grace_ms" | "timeout_ms" | "allow_sites" | "allow_names" | "allow_untracked"
    )
}

/// Rejects what a module's `#[leak_check(...)]` does not take: runtime arguments, which each
/// test chooses, and `off` on a module that no checked module encloses.
fn module_takes(meta: &ParseNestedMeta<'_>, key: &str, nested: bool) -> syn::Result<()> {
    if is_runtime_key(key) {
        return Err(meta.error(format!(
            "`{key}` is a runtime argument, which each test chooses: write it on the test, in `#[tokio::test({key} = ...)]` or `#[leak_check({key} = ...)]`; a module's `#[leak_check(...)]` takes only leak-check's controls, {CONTROL_KEYS}"
        )));
    }
    match key {
        "off" if !nested => Err(meta.error(
            "`off` only works inside a module checked by `#[leak_check]`, to opt one test (or nested module) out: this module is not checked without `#[leak_check]`, so remove the attribute",
        )),
        "off" => Ok(()),
        _ if is_control_key(key) => Ok(()),
        _ => Err(meta.error(format!(
            "unknown argument; a module's `#[leak_check(...)]` takes {CONTROL_KEYS}"
        ))),
    }
}

/// Rejects what `#[tokio::test(...)]` does not take here: leak-check's own arguments, which
/// belong in `#[leak_check(...)]`, and anything leak-check does not know how to build a runtime
/// with.
fn tokio_test_takes(meta: &ParseNestedMeta<'_>, key: &str) -> syn::Result<()> {
    if key == "off" {
        return Err(meta.error(
            "`off` is leak-check's argument: to opt a test out of its module's check, write `#[leak_check(off)]` above it",
        ));
    }
    if is_control_key(key) {
        return Err(meta.error(format!(
            "`{key}` is leak-check's argument: write it in `#[leak_check({key} = ...)]`"
        )));
    }
    if !is_runtime_key(key) {
        return Err(meta.error(format!(
            "leak-check builds this test's runtime and does not know this `#[tokio::test]` argument; it knows {RUNTIME_KEYS}"
        )));
    }
    Ok(())
}

/// `flavor = "..."`: the two flavors leak-check can build.
fn flavor(meta: &ParseNestedMeta<'_>) -> syn::Result<Flavor> {
    let lit: LitStr = value(meta, "flavor = \"multi_thread\"")?;
    match lit.value().as_str() {
        "current_thread" => Ok(Flavor::CurrentThread),
        "multi_thread" => Ok(Flavor::MultiThread),
        "local" => Err(syn::Error::new(
            lit.span(),
            "leak-check does not support the `local` flavor; use `flavor = \"current_thread\"` with a `tokio::task::LocalSet` and `leak_check::spawn_local`",
        )),
        other => Err(syn::Error::new(
            lit.span(),
            format!("unknown runtime flavor `{other}`; write `flavor = \"current_thread\"` or `flavor = \"multi_thread\"`"),
        )),
    }
}

/// `worker_threads = n`, with at least one worker.
fn worker_threads(meta: &ParseNestedMeta<'_>) -> syn::Result<usize> {
    let lit: LitInt = value(meta, "worker_threads = 2")?;
    let n = lit.base10_parse::<usize>()?;
    if n == 0 {
        return Err(syn::Error::new(
            lit.span(),
            "`worker_threads` must be at least 1",
        ));
    }
    Ok(n)
}

/// `crate = "..."`: the path the tokio crate goes by.
fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let lit: LitStr = value(meta, "crate = \"my_tokio\"")?;
    lit.parse().map_err(|_| {
        syn::Error::new(
            lit.span(),
            "`crate` takes the path of the tokio crate, such as `crate = \"my_tokio\"`",
        )
    })
}

/// `unhandled_panic = "..."`: one of the two behaviours tokio offers.
fn unhandled_panic(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let lit: LitStr = value(meta, "unhandled_panic = \"shutdown_runtime\"")?;
    if !matches!(lit.value().as_str(), "ignore" | "shutdown_runtime") {
        return Err(syn::Error::new(
            lit.span(),
            "`unhandled_panic` is `\"ignore\"` or `\"shutdown_runtime\"`",
        ));
    }
    Ok(lit)
}

/// A whole number of milliseconds; kept as a number so a suffix such as `250u32` cannot leak
/// into the generated code.
fn millis(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<u64> {
    let lit: LitInt = value(meta, example)?;
    lit.base10_parse::<u64>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("this takes whole milliseconds, zero or more, like `{example}`"),
        )
    })
}

/// A list of string literals: `["a", "b"]`.
fn strings(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<Vec<LitStr>> {
    let key = meta
        .path
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let array: syn::ExprArray = value(meta, example)?;
    array
        .elems
        .iter()
        .map(|element| match element {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(lit),
                ..
            }) => Ok(lit.clone()),
            other => Err(syn::Error::new_spanned(
                other,
                format!("`{key}` takes string literals, like `{example}`"),
            )),
        })
        .collect()
}

fn value<T: syn::parse::Parse>(meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<T> {
    let key = meta
        .path
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let stream = meta
        .value()
        .map_err(|_| meta.error(format!("`{key}` needs a value: write `{example}`")))?;
    stream.parse::<T>().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("`{key}` takes a value like `{example}`"),
        )
    })
}

fn set<T>(slot: &mut Option<Spanned<T>>, key: &str, value: T, span: Span) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            span,
            format!("`{key}` is given twice; keep one"),
        ));
    }
    *slot = Some(Spanned { value, span });
    Ok(())
}

fn merge_one<T>(
    slot: &mut Option<Spanned<T>>,
    other: Option<Spanned<T>>,
    key: &str,
) -> syn::Result<()> {
    let Some(other) = other else { return Ok(()) };
    if slot.is_some() {
        return Err(syn::Error::new(
            other.span,
            format!("`{key}` is given both in `#[leak_check(...)]` and in `#[tokio::test(...)]`; keep one"),
        ));
    }
    *slot = Some(other);
    Ok(())
}
