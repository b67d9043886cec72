//! Allow-lists: stragglers that are expected, by spawn site or task name. They are not reported,
//! but are still aborted when the test ends.

use std::panic::Location;

#[derive(Default, Debug, Clone)]
pub(crate) struct AllowList {
    /// Path prefixes (`src/metrics.rs`, `src/metrics.rs:40`) or globs (`*/background/*`),
    /// matched against `file:line:col`.
    pub(crate) sites: Vec<String>,
    /// Names or globs.
    pub(crate) names: Vec<String>,
    /// Tasks spawned with plain `tokio::spawn` whose sites are unknown are not counted.
    pub(crate) untracked: bool,
}

impl AllowList {
    /// Whether any live task could be allowed, so that the check must look at each one.
    pub(crate) fn may_allow_some(&self) -> bool {
        self.untracked || !self.sites.is_empty() || !self.names.is_empty()
    }

    pub(crate) fn allows(&self, site: &Location<'_>, name: Option<&str>) -> bool {
        let site = site.to_string();
        self.sites
            .iter()
            .any(|pattern| site_matches(pattern, &site))
            || name.is_some_and(|name| self.names.iter().any(|pattern| glob(pattern, name)))
    }
}

fn site_matches(pattern: &str, site: &str) -> bool {
    if pattern.contains(['*', '?']) {
        let file = site.split(':').next().unwrap_or(site);
        glob(pattern, site) || glob(pattern, file)
    } else {
        // A prefix ends where a path part or a number does: `src/a.rs:40` is not `src/a.rs:400`.
        site.strip_prefix(pattern).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with([':', '/']) || pattern.ends_with(['/', ':'])
        })
    }
}

/// `*` matches any run of characters, `?` any one; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*/bg/*", "src/bg/ticker.rs"));
        assert!(!glob("src/*.rs", "tests/x.rs"));
        assert!(glob("worker-*", "worker-12"));
    }

    #[test]
    fn sites_by_prefix_or_glob_and_names() {
        let list = AllowList {
            sites: vec!["tests/allowed.rs:2".into(), "*/metrics/*".into()],
            names: vec!["flusher-*".into()],
            untracked: false,
        };
        let here = Location::caller();
        assert!(!list.allows(here, None));
        assert!(list.allows(here, Some("flusher-3")));
        let prefix = AllowList {
            sites: vec![here.file().into()],
            names: vec![],
            untracked: false,
        };
        assert!(prefix.allows(here, None));
        let line = format!("{}:{}", here.file(), here.line());
        let same_line = AllowList {
            sites: vec![line.clone()],
            names: vec![],
            untracked: false,
        };
        assert!(same_line.allows(here, None));
        let shorter_line = AllowList {
            sites: vec![line[..line.len() - 1].to_owned()],
            names: vec![],
            untracked: false,
        };
        assert!(
            !shorter_line.allows(here, None),
            "{line} without its last digit"
        );
        let directory = AllowList {
            sites: vec!["src".into()],
            names: vec![],
            untracked: false,
        };
        assert!(directory.allows(here, None));
        let glob_file = AllowList {
            sites: vec!["src/*.rs".into()],
            names: vec![],
            untracked: false,
        };
        assert!(glob_file.allows(here, None));
    }
}
