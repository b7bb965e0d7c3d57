//! The worker's dependency rule, checked by a test that reads the sources: the adapter
//! (`grpc`) sits on the application (`app`), which sits on the capabilities; no capability
//! imports `app`, `grpc` or the crate root (the old `crate::State`), and the modules form a
//! DAG, so a new back-edge fails CI instead of quietly tying modules into a cycle.
//!
//! Only `use crate::…` paths and inline `crate::…` paths count; test modules (from their
//! `#[cfg(test)]` on) are left out, since tests may reach anywhere.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// Transport adapters and the application layer: nothing below them may import them.
const UPPER: &[&str] = &["grpc", "app"];

/// True leaves: they import nothing from the worker, so anyone may import them.
const LEAVES: &[&str] = &["retry", "stored", "telemetry", "tenancy"];

/// Items of the crate root that capabilities may name: re-exports of a module's own item.
const ROOT_REEXPORTS: &[(&str, &str)] = &[("Config", "config"), ("DEFAULT_TENANT_ID", "tenancy")];

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level names one source file refers to through `crate::`.
fn crate_paths(source: &str) -> Vec<String> {
    let source = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}, e}`: the first segment of each top-level item.
            let (mut depth, mut item) = (0usize, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            names.push(first_segment(&item));
        } else {
            names.push(first_segment(rest));
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Top-level module → the modules (or `crate::Item`s) it uses, over every file under `src`.
fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative.components().next().unwrap().as_os_str();
            let module = first.to_string_lossy().trim_end_matches(".rs").to_owned();
            // The crate root wires the layers together; this file quotes paths in its tests.
            if module == "lib" || module == "main" || module == "layers" {
                continue;
            }
            let uses = graph.entry(module.clone()).or_default();
            for name in crate_paths(&fs::read_to_string(&path).unwrap()) {
                if name != module {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle through `graph`'s modules, if any (as the path that closes it).
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(cycle) = visit(next, graph, path, done)
            {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Every way `graph` breaks the rule in the module documentation.
fn violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (module, uses) in graph {
        let upper = UPPER.iter().position(|u| u == module);
        for used in uses {
            let root_item = used.starts_with(|c: char| c.is_ascii_uppercase());
            if root_item && upper.is_none() && !ROOT_REEXPORTS.iter().any(|(n, _)| n == used) {
                found.push(format!("{module} uses crate::{used} of the crate root"));
            }
            // `grpc` may use `app`, `app` may not use `grpc`; capabilities use neither.
            if let Some(used_rank) = UPPER.iter().position(|u| u == used)
                && upper.is_none_or(|rank| rank >= used_rank)
            {
                found.push(format!("{module} imports the layer above it, {used}"));
            }
            if LEAVES.contains(&module.as_str()) && graph.contains_key(used) {
                found.push(format!("the leaf {module} imports {used}"));
            }
        }
    }
    if let Some(cycle) = cycle(graph) {
        found.push(format!("import cycle: {}", cycle.join(" → ")));
    }
    found
}

#[test]
fn the_worker_modules_form_a_dag_below_the_adapter_and_the_application() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.contains_key("app") && graph.contains_key("search"),
        "{graph:?}"
    );
    let violations = violations(&graph);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn back_edges_are_reported() {
    let graph: Graph = [
        ("app", &["search"][..]),
        ("search", &["error", "State"][..]),
        ("error", &["search"][..]),
        ("tenancy", &["grpc"][..]),
        ("grpc", &["app"][..]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_owned(), uses.iter().map(|u| (*u).to_owned()).collect()))
    .collect();
    let found = violations(&graph);
    assert!(
        found
            .iter()
            .any(|v| v == "search uses crate::State of the crate root"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v == "tenancy imports the layer above it, grpc"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v == "the leaf tenancy imports grpc"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|v| v.starts_with("import cycle: ")),
        "{found:?}"
    );
    assert_eq!(
        crate_paths(
            "use crate::{a::{b, c}, d};\nlet x = crate::e::f();\n#[cfg(test)]\nuse crate::g;"
        ),
        ["a", "d", "e"]
    );
}
