//! A crate's modules form layers: no module imports one that imports it
//! back, directly or around a longer loop, so the folders say which way
//! dependencies run. The engine runs this file as its `layers` test and
//! `scim-host` as its own (host-harness/Cargo.toml); each checks the `src`
//! of the crate it is built for.
//!
//! A module is a file or folder under the crate's `src`; an import between two
//! files counts between the two sibling modules that hold them (`rules/eval.rs`
//! naming `crate::mapper::Grant` is an edge `rules -> mapper`;
//! `resource/render.rs` naming `super::verbatim` is `render -> verbatim`
//! inside `resource`). Test code is left out: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path from the crate root, e.g. `["resource", "render"]`.
type ModPath = Vec<String>;

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = source_files(&src);
    let modules: BTreeSet<ModPath> = files.keys().cloned().collect();

    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (module, path) in &files {
        let text = fs::read_to_string(path).expect("readable source file");
        for named in crate_paths(&production_code(&text), module) {
            if let Some((from, to)) = sibling_edge(module, &named, &modules) {
                edges.entry(from).or_default().insert(to);
            }
        }
    }

    let cycles: Vec<String> = edges
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from, to)))
        .filter_map(|(from, to)| {
            path_between(&edges, to, from).map(|back| {
                let mut names = vec![from.join("::")];
                names.extend(back.iter().map(|m| m.join("::")));
                names.join(" -> ")
            })
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between modules of {}:\n  {}",
        src.display(),
        cycles.join("\n  ")
    );
}

/// Every `.rs` file under `src` by its module path, without the test-only
/// files (`#[cfg(test)] mod x;`).
fn source_files(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut test_only = BTreeSet::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("readable src folder") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let module = module_path(src, &path);
            let text = fs::read_to_string(&path).expect("readable source file");
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for pair in lines.windows(2) {
                let child = pair[1]
                    .strip_prefix("mod ")
                    .and_then(|r| r.strip_suffix(';'));
                if let (true, Some(child)) = (pair[0] == "#[cfg(test)]", child) {
                    let mut m = module.clone();
                    m.push(child.to_string());
                    test_only.insert(m);
                }
            }
            out.insert(module, path);
        }
    }
    out.retain(|m, _| !test_only.iter().any(|t| m.starts_with(t)));
    out
}

/// `src/a/b.rs` is `["a", "b"]`; `src/a/mod.rs` is `["a"]`; `src/lib.rs` is `[]`.
fn module_path(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: ModPath = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The text without comments and without inline `#[cfg(test)] mod x { .. }`.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" {
            if let Some(next) = lines.next() {
                if next.trim_start().starts_with("mod ") && next.trim_end().ends_with('{') {
                    // Skip to the block's closing brace, at the same indent.
                    let indent = &next[..next.len() - next.trim_start().len()];
                    let close = format!("{indent}}}");
                    lines.by_ref().find(|l| l.trim_end() == close);
                } else {
                    out.push_str(next);
                    out.push('\n');
                }
            }
            continue;
        }
        if !trimmed.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every path the code names through `crate::` or `super::`, resolved from
/// the crate root; `use` groups (`crate::{a::X, b::{c, d}}`) are expanded.
fn crate_paths(code: &str, module: &ModPath) -> Vec<ModPath> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let at_word_start = i == 0 || !is_ident(bytes[i - 1] as char) && bytes[i - 1] != b':';
        if at_word_start && (code[i..].starts_with("crate::") || code[i..].starts_with("super::")) {
            let (paths, end) = use_tree(code, i);
            for p in paths {
                if let Some(resolved) = resolve(module, &p) {
                    out.push(resolved);
                }
            }
            i = end;
        } else {
            i += code[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// Reads the path (or `use` tree) starting at `start`: its expanded paths
/// as segments, and where it ends.
fn use_tree(code: &str, start: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = start;
    loop {
        let ident: String = code[i..].chars().take_while(|c| is_ident(*c)).collect();
        i += ident.len();
        if ident.is_empty() {
            break;
        }
        prefix.push(ident);
        if !code[i..].starts_with("::") {
            return (vec![prefix], i);
        }
        i += 2;
        if code[i..].starts_with('{') {
            // A group: split at top-level commas, expand each part.
            let mut out = Vec::new();
            i += 1;
            loop {
                let skip = code[i..].len() - code[i..].trim_start().len();
                i += skip;
                if code[i..].starts_with('}') {
                    return (out, i + 1);
                }
                let (parts, end) = use_tree(code, i);
                out.extend(parts.into_iter().map(|p| [prefix.clone(), p].concat()));
                i = end;
                let skip = code[i..].len() - code[i..].trim_start().len();
                i += skip;
                if code[i..].starts_with(',') {
                    i += 1;
                } else if !code[i..].starts_with('}') {
                    // `x as y` or an unexpected token: move on to the close.
                    i += code[i..].find([',', '}']).unwrap_or(code.len() - i);
                    if code[i..].starts_with(',') {
                        i += 1;
                    }
                }
            }
        }
    }
    (vec![prefix], i)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

#[test]
fn use_groups_expand_and_super_resolves() {
    let code =
        "use crate::{error::ScimError, store::{Page, Store}};\nlet v = super::verbatim::copy();";
    let module = vec!["resource".to_string(), "render".to_string()];
    let paths: Vec<String> = crate_paths(code, &module)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "error::ScimError",
            "store::Page",
            "store::Store",
            "resource::verbatim::copy"
        ]
    );
}

/// `crate::a::b` is `[a, b]`; `super::x` from `[m, n]` is `[m, x]`; `self`
/// is dropped.
fn resolve(module: &ModPath, path: &[String]) -> Option<ModPath> {
    let mut out: ModPath = Vec::new();
    let mut segments = path.iter().peekable();
    match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
        }
        Some("super") => {
            out = module.clone();
            while segments.peek().is_some_and(|s| *s == "super") {
                segments.next();
                out.pop()?;
            }
        }
        _ => return None,
    }
    out.extend(segments.filter(|s| *s != "self").cloned());
    Some(out)
}

/// The edge an import from `module` to the item at `named` makes: between
/// the two siblings under their deepest common ancestor. None when one
/// holds the other (a parent using its child, a child its parent's items).
fn sibling_edge(
    module: &ModPath,
    named: &ModPath,
    modules: &BTreeSet<ModPath>,
) -> Option<(ModPath, ModPath)> {
    // The module the named item lives in: its longest prefix that is one.
    let target = (0..=named.len())
        .rev()
        .map(|n| named[..n].to_vec())
        .find(|p| {
            modules.contains(p) || modules.iter().any(|m| m.starts_with(p) && !p.is_empty())
        })?;
    let common = module
        .iter()
        .zip(&target)
        .take_while(|(a, b)| a == b)
        .count();
    if common == module.len() || common == target.len() {
        return None;
    }
    Some((module[..=common].to_vec(), target[..=common].to_vec()))
}

/// A path of edges from `from` to `to`, if there is one (depth-first).
fn path_between(
    edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
    from: &ModPath,
    to: &ModPath,
) -> Option<Vec<ModPath>> {
    let mut stack = vec![vec![from.clone()]];
    let mut seen = BTreeSet::new();
    while let Some(route) = stack.pop() {
        let last = route.last().expect("a route is never empty");
        if last == to {
            return Some(route);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in edges.get(last).into_iter().flatten() {
            let mut longer = route.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}
