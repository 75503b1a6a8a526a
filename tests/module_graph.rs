//! The modules of the `rlpg` crate form no import cycle (docs/architecture.md, "Invariants"):
//! the graph of `crate::<module>` references between the top-level modules of `src/` (comments
//! left out) has no cycle. A cycle ties modules into one unit that can only be read, changed and
//! tested together, as `config -> run -> checkpoint -> config` once did.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a Rust file without its comments (`//` to the end of the line).
fn without_comments(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The names after `crate::` in `code`: `crate::run::X` gives `run`, `crate::{a, b::c}` gives
/// `a` and `b`.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name: String =
                    item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.insert(name);
            }
        } else {
            out.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    out
}

#[test]
fn the_top_level_modules_of_rlpg_form_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |path: &Path| -> Option<String> {
        let rel = path.strip_prefix(&src).expect("under src/");
        let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
        let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        (!matches!(name.as_str(), "lib" | "main")).then_some(name)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    // The crate root re-exports some items; a reference to one is a reference to its module.
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let mut reexported = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
        let Some((module, items)) = line.split_once("::") else { continue };
        let items = items.trim_end_matches(';').trim_matches(|c| c == '{' || c == '}');
        for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            reexported.insert(item.to_owned(), module.to_owned());
        }
    }
    assert!(modules.len() >= 10, "found only {modules:?} under {}", src.display());

    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(file) else { continue };
        let code = without_comments(&std::fs::read_to_string(file).expect("readable"));
        for name in crate_references(&code) {
            let to = reexported.get(&name).cloned().unwrap_or(name);
            if to != from && modules.contains(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in &modules {
        if let Some(cycle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "import cycle between the modules of rlpg: {} (move what one of them needs \
                 from the other to where it belongs; docs/architecture.md lists the layers)",
                cycle.join(" -> ")
            );
        }
    }
}
