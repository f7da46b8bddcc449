//! The CRD field reference (docs/crd-reference.md), generated from the CRD's OpenAPI schema so
//! it cannot drift: `cargo run -q -p deepseek-e2e --bin crd-docs > docs/crd-reference.md`
//! (`make crds` does it); e2e/tests/crd_reference.rs fails while the file is out of date.

use std::fmt::Write;

use serde_json::Value;

/// Fields whose schema is a Kubernetes core type: documented by Kubernetes, not expanded here.
const CORE_TYPES: [(&str, &str); 2] = [
    ("env", "[EnvVar](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#environment-variables)"),
    ("tolerations", "[Toleration](https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#scheduling)"),
];

/// The whole reference as Markdown.
pub fn generate() -> anyhow::Result<String> {
    let crd = serde_json::to_value(deepseek_crds::crd::crd())?;
    let version = &crd["spec"]["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"];
    let mut out = String::new();
    writeln!(out, "# DeepSeekDeployment field reference\n")?;
    writeln!(
        out,
        "Generated from the CRD schema by `cargo run -q -p deepseek-e2e --bin crd-docs` \
         (`make crds`); a test fails when this file is out of date. Do not edit by hand.\n"
    )?;
    writeln!(
        out,
        "`apiVersion: {}/{}`, `kind: {}`, short name `{}`, namespaced, status subresource.\n",
        crd["spec"]["group"].as_str().unwrap_or_default(),
        version["name"].as_str().unwrap_or_default(),
        crd["spec"]["names"]["kind"].as_str().unwrap_or_default(),
        crd["spec"]["names"]["shortNames"][0]
            .as_str()
            .unwrap_or_default(),
    )?;
    rules_section(&mut out, "Rules on the whole resource", schema)?;
    for part in ["spec", "status"] {
        writeln!(out, "## `{part}`\n")?;
        writeln!(
            out,
            "{}\n",
            one_line(&schema["properties"][part]["description"])
        )?;
        writeln!(
            out,
            "| field | type | required | default | constraints | description |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|")?;
        let mut rows = Vec::new();
        fields(part, &schema["properties"][part], &mut rows);
        for row in rows {
            writeln!(out, "{row}")?;
        }
        writeln!(out)?;
    }
    printer_columns(&mut out, &version["additionalPrinterColumns"])?;
    Ok(out)
}

fn one_line(v: &Value) -> String {
    v.as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn type_name(s: &Value) -> String {
    if s["x-kubernetes-int-or-string"] == true {
        return "int or string".into();
    }
    match s["type"].as_str() {
        Some("array") => format!("[]{}", type_name(&s["items"])),
        Some("object") if s["additionalProperties"].is_object() => {
            format!("map[string]{}", type_name(&s["additionalProperties"]))
        }
        Some(t) => t.to_string(),
        None => "any".into(),
    }
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => v.to_string(),
    }
}

fn constraints(s: &Value) -> String {
    let mut c = Vec::new();
    let pairs = [
        ("minimum", ">= "),
        ("maximum", "<= "),
        ("minLength", "min length "),
        ("maxLength", "max length "),
        ("minItems", "min items "),
        ("maxItems", "max items "),
    ];
    for (key, label) in pairs {
        if !s[key].is_null() {
            c.push(format!("{label}{}", number(&s[key])));
        }
    }
    if let Some(values) = s["enum"].as_array() {
        let names: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect();
        c.push(format!("one of {}", names.join(", ")));
    }
    if let Some(p) = s["pattern"].as_str() {
        c.push(format!("pattern `{}`", p.replace('|', "\\|")));
    }
    if let Some(keys) = s["x-kubernetes-list-map-keys"].as_array() {
        let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        c.push(format!("unique by {}", keys.join(", ")));
    }
    for rule in s["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        c.push(format!("rule: {}", one_line(&rule["message"])));
    }
    c.join("; ")
}

/// Appends one row per field under `path`, depth first, in schema (alphabetical) order.
fn fields(path: &str, s: &Value, rows: &mut Vec<String>) {
    let required: Vec<&str> = s["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(props) = s["properties"].as_object() else {
        return;
    };
    for (name, p) in props {
        let field = format!("{path}.{name}");
        let core = CORE_TYPES.iter().find(|(n, _)| *n == name.as_str());
        let ty = match core {
            Some((_, link)) => format!("[]{link}"),
            None => format!("`{}`", type_name(p)),
        };
        let default = if p["default"].is_null() {
            String::new()
        } else {
            format!("`{}`", p["default"])
        };
        rows.push(format!(
            "| `{field}` | {ty} | {} | {default} | {} | {} |",
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            constraints(p),
            one_line(&p["description"]),
        ));
        if core.is_some() {
            continue;
        }
        if p["properties"].is_object() {
            fields(&field, p, rows);
        } else if p["items"]["properties"].is_object() {
            fields(&format!("{field}[]"), &p["items"], rows);
        }
    }
}

fn rules_section(out: &mut String, title: &str, s: &Value) -> std::fmt::Result {
    let rules = s["x-kubernetes-validations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() {
        return Ok(());
    }
    writeln!(out, "## {title}\n")?;
    for r in rules {
        writeln!(
            out,
            "- {} (`{}`)",
            one_line(&r["message"]),
            one_line(&r["rule"])
        )?;
    }
    writeln!(out)
}

fn printer_columns(out: &mut String, columns: &Value) -> std::fmt::Result {
    writeln!(out, "## `kubectl get dsd` columns\n")?;
    writeln!(out, "| column | from | shown | description |")?;
    writeln!(out, "|---|---|---|---|")?;
    for c in columns.as_array().into_iter().flatten() {
        let shown = if c["priority"].as_i64().unwrap_or(0) > 0 {
            "`-o wide`"
        } else {
            "always"
        };
        writeln!(
            out,
            "| {} | `{}` | {shown} | {} |",
            c["name"].as_str().unwrap_or_default(),
            c["jsonPath"]
                .as_str()
                .unwrap_or_default()
                .replace('|', "\\|"),
            one_line(&c["description"]),
        )?;
    }
    Ok(())
}
