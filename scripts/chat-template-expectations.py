#!/usr/bin/env python3
"""Writes runtime/cli/tests/fixtures/templates/expected.json: every template fixture
(runtime/cli/tests/fixtures/templates/deepseek-*.json, as tokenizer_config.json holds it) rendering
every conversation of conversations.json, by Python's jinja2 configured exactly as Hugging Face
transformers' `apply_chat_template` configures it (sandboxed environment, trim_blocks,
lstrip_blocks, loop controls, `raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII).
runtime/cli/tests/chat_template_deepseek.rs asserts our minijinja renderer gives the same strings, so
the expectations never come from the renderer under test. Run it again after changing a fixture
and commit the output:

    python3 -m venv /tmp/jinja && /tmp/jinja/bin/pip install 'jinja2==3.1.6'
    /tmp/jinja/bin/python scripts/chat-template-expectations.py
"""
import datetime
import json
import pathlib

import jinja2
from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

DIR = pathlib.Path(__file__).resolve().parent.parent / "runtime/cli/tests/fixtures/templates"


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token(value):
    """A special token as tokenizer_config.json stores it: a string or an AddedToken object."""
    if isinstance(value, dict):
        return value["content"]
    return value


def main():
    env = environment()
    cases = json.loads((DIR / "conversations.json").read_text(encoding="utf-8"))["cases"]
    out = {"generator": "scripts/chat-template-expectations.py", "jinja2": jinja2.__version__, "templates": {}}
    for path in sorted(DIR.glob("deepseek-*.json")):
        config = json.loads(path.read_text(encoding="utf-8"))
        template = env.from_string(config["chat_template"])
        rendered = {}
        for case in cases:
            rendered[case["name"]] = template.render(
                messages=case["messages"],
                add_generation_prompt=case["add_generation_prompt"],
                bos_token=token(config.get("bos_token")) or "",
                eos_token=token(config.get("eos_token")) or "",
            )
        out["templates"][path.name] = rendered
    text = json.dumps(out, ensure_ascii=False, indent=1) + "\n"
    (DIR / "expected.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
