"""Issue 21 item 7: the same flags everywhere, found by walking every command's options (click
introspection): --threads/--device/--dtype on every command that loads a model, one help text
each, case-insensitive choices; eval-following --limit; compare-concepts/compare-heads refuse the
same directory twice, as compare does."""

import enum
import json

import click
import typer.main

from helpers_tiny import assert_one_line_error
from tuneshift.cli import app

#: every command that loads a model.
MODEL_COMMANDS = ("attribute", "demo", "heads", "concepts", "annotate", "eval-following", "template")
#: commands with heavy compute and no model to place: only --threads where torch computes.
EXCEPTIONS = {
    # trains on the CPU (float32 weights, --bf16 autocast): a GPU training path is not written
    "tune": {"--threads"},
}
SHARED = ("--threads", "--device", "--dtype")


def _commands() -> dict[str, click.Command]:
    return dict(typer.main.get_command(app).commands)


def _opts(cmd: click.Command) -> dict[str, click.Parameter]:
    return {o: p for p in cmd.params for o in p.opts if o.startswith("--")}


def _kind(p) -> type:
    """The value type of an option (typer's annotation, Optional/List unwrapped)."""
    import typing

    t = p.type_descriptor.annotation
    while typing.get_origin(t) in (typing.Union, list, typing.List) or str(typing.get_origin(t)) == "types.UnionType":
        t = next(a for a in typing.get_args(t) if a is not type(None))
    return t


def test_model_commands_take_threads_device_dtype_with_one_help():
    cmds = _commands()
    helps: dict[str, set] = {flag: set() for flag in SHARED}
    for name in MODEL_COMMANDS:
        opts = _opts(cmds[name])
        for flag in SHARED:
            assert flag in opts, f"{name} has no {flag}"
            if name == "demo" and flag == "--threads":  # per worker process (issue 19): its own help says so
                assert "per worker" in opts[flag].help
                continue
            helps[flag].add(opts[flag].help)
    for name, flags in EXCEPTIONS.items():
        opts = _opts(cmds[name])
        for flag in flags:
            assert flag in opts, f"{name} has no {flag}"
            helps[flag].add(opts[flag].help)
    for name, cmd in cmds.items():  # any command that has one of them: the same help
        for flag in SHARED:
            if name == "demo" and flag == "--threads":  # per worker process (issue 19): its own help says so
                assert "per worker" in _opts(cmd)[flag].help
                continue
            if flag in _opts(cmd):
                helps[flag].add(_opts(cmd)[flag].help)
    assert {flag: len(h) for flag, h in helps.items()} == {flag: 1 for flag in SHARED}


def test_every_choice_is_case_insensitive():
    for name, cmd in _commands().items():
        for p in cmd.params:
            if isinstance(_kind(p), type) and issubclass(_kind(p), enum.Enum):
                assert p.type_descriptor.parameter_info.case_sensitive is False, f"{name} {p.opts}"
            if any(o in ("--device", "--dtype") for o in p.opts):
                assert p.callback is not None, f"{name} {p.opts} is not lower-cased"


def test_same_spelling_same_kind():
    """A flag spelled the same in two commands is the same kind of value (int, path, choice...)."""
    kinds: dict[str, set] = {}
    for cmd in _commands().values():
        for flag, p in _opts(cmd).items():
            kinds.setdefault(flag, set()).add(getattr(_kind(p), "__name__", str(_kind(p))))
    mixed = {f: k for f, k in kinds.items() if len(k) > 1 and f not in ("--model", "--out", "--sign")}
    assert mixed == {}


def test_mixed_case_values_work(cli, tiny_llama_chat_dir, tmp_path):
    r = cli("template", tiny_llama_chat_dir, "--device", "CPU", "--dtype", "Float32", "--threads", "1")
    assert r.code == 0, r.err
    r = cli("heads", "--model", tiny_llama_chat_dir, "--out", tmp_path / "h", "--dtype", "FLOAT99")
    assert_one_line_error(r, "--dtype", "float99")
    t0 = __import__("time").time()
    r = cli("demo", "--out", tmp_path / "d", "--dtype", "Float16", "--limit", 1)  # checked before any load
    assert_one_line_error(r, "float16 is for GPUs")
    assert __import__("time").time() - t0 < 10 and not (tmp_path / "d").exists()
    r = cli("compare", tmp_path / "a", tmp_path / "b", "--sign", "ABS")
    assert r.code == 2 and "'ABS' is not one of" not in r.err and "Invalid value" not in r.err


def test_eval_following_limit(cli, tiny_llama_chat_dir, tmp_path):
    r = cli(
        "eval-following",
        "--model",
        tiny_llama_chat_dir,
        "--limit",
        2,
        "--max-new-tokens",
        2,
        "--threads",
        1,
        "--out",
        tmp_path / "f",
        "--device",
        "cpu",
        "--dtype",
        "float32",
    )
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "f" / "following.json").read_text())
    assert doc["n_items"] == 2 and len(doc["results"][0]["rows"]) == 2
    assert doc["results"][0]["dtype"] == "float32"
    r = cli(
        "eval-following",
        "--model",
        tiny_llama_chat_dir,
        "--limit",
        1,
        "--max-new-tokens",
        2,
        "--threads",
        1,
        "--out",
        tmp_path / "g",
        "--dtype",
        "Float64",
    )
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "g" / "following.json").read_text())["results"][0]["dtype"] == "float64"
    assert_one_line_error(cli("eval-following", "--model", tiny_llama_chat_dir, "--limit", 0), "--limit")


def test_chat_template_keywords_are_case_insensitive(tmp_path, monkeypatch):
    # `--chat-template NONE` was read as a file name; a file that is really named so still wins
    from tuneshift.cli.options import template_choice

    monkeypatch.chdir(tmp_path)
    assert template_choice("NONE") == "none" and template_choice("Auto") == "auto"
    assert template_choice("form.jinja") == "form.jinja"
    (tmp_path / "NONE").write_text("{{ messages[0]['content'] }}")
    assert template_choice("NONE") == "NONE"
