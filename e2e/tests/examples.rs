//! examples/: every file the index lists exists (and every example is listed), every Python
//! example compiles, the customer-service router's label parsing routes as documented, and the
//! Locust file defines a user with tasks. (The Python clients run against the real runtime in
//! runtime/cli/tests/examples_clients.rs.)

use std::path::PathBuf;
use std::process::Command;

use deepseek_e2e::repo;

type TestResult = anyhow::Result<()>;

fn files_under(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo::path(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn python(code: &str, args: &[String]) -> anyhow::Result<String> {
    let out = Command::new(repo::python()?)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "{log}");
    Ok(log)
}

#[test]
fn every_example_is_listed_in_the_index_and_every_listed_file_exists() -> TestResult {
    let index = repo::read("examples/README.md")?;
    let root = repo::path("examples");
    let mut examples = files_under("examples", "yaml");
    examples.extend(files_under("examples", "py"));
    assert!(examples.len() >= 8, "{examples:?}");
    for file in examples {
        let rel = file.strip_prefix(&root)?.to_string_lossy().to_string();
        assert!(
            index.contains(&format!("({rel})")),
            "examples/README.md does not link {rel}"
        );
    }
    for link in index
        .split("](")
        .skip(1)
        .filter_map(|s| s.split(')').next())
    {
        if link.starts_with("http") || link.starts_with('#') {
            continue;
        }
        assert!(
            root.join(link).exists(),
            "examples/README.md links {link}, which does not exist"
        );
    }
    Ok(())
}

#[test]
fn every_python_example_compiles() -> TestResult {
    let files: Vec<String> = files_under("examples", "py")
        .iter()
        .map(|p| p.to_string_lossy().to_string())
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    python(
        "import ast, sys\nfor f in sys.argv[1:]:\n    ast.parse(open(f).read(), f)\n    compile(open(f).read(), f, 'exec')",
        &files,
    )?;
    Ok(())
}

#[test]
fn the_customer_service_router_routes_by_label_then_by_keywords() -> TestResult {
    let code = r#"
import sys
sys.path.insert(0, sys.argv[1])
import customer_service as cs
cases = [
    ("returns", "whatever", "returns"),
    ("Technical.", "whatever", "technical"),
    ("General", "whatever", "general"),
    ("I think this is about", "Can I get a refund?", "returns"),
    ("", "The app shows an error on login", "technical"),
    ("unsure", "What are your opening hours?", "general"),
]
for answer, message, want in cases:
    got = cs.parse_label(answer, message)
    assert got == want, (answer, message, got, want)
assert set(cs.ROUTES) == {"returns", "technical", "general"}
assert len(set(cs.ROUTES.values())) == 3, "each flow has its own system prompt"
print("ok")
"#;
    let dir = repo::path("examples/python").to_string_lossy().to_string();
    assert!(python(code, &[dir])?.contains("ok"));
    Ok(())
}

#[test]
fn the_locust_file_defines_a_user_with_streaming_chat_tasks() -> TestResult {
    let code = r#"
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
users = [c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
         and any(getattr(b, "id", "") == "HttpUser" for b in c.bases)]
assert users, "no HttpUser subclass"
tasks = [f for f in ast.walk(users[0]) if isinstance(f, ast.FunctionDef)
         and any(getattr(getattr(d, "func", None), "id", "") == "task" for d in f.decorator_list)]
assert len(tasks) >= 2, [t.name for t in tasks]
src = open(sys.argv[1]).read()
assert "/v1/chat/completions" in src and '"stream": stream' in src
print("ok")
"#;
    let file = repo::path("examples/load/locustfile.py")
        .to_string_lossy()
        .to_string();
    assert!(python(code, &[file])?.contains("ok"));
    Ok(())
}
