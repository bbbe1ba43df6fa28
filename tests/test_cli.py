"""The ``tuneshift`` command line, run as a user would.

Contract (project issue): bad input gets a one-line ``error: ...`` on stderr and exit code 2,
never a traceback; typer usage errors exit 2; a run that completes but skipped input lines or
records exits 3 and says how many; an interrupt leaves a resumable run.

A few tests start a real process (``python -m tuneshift``, with the session's
``TUNESHIFT_CACHE``); the others call :func:`tuneshift.cli.main` in-process (much faster: no
torch import per case) and capture stderr with ``capsys``. Every case checks the exit code,
that stderr has no traceback, that the message names the problem, and that nothing was lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import helpers_tiny as H
import tuneshift
from helpers_tiny import CliResult as Result  # noqa: F401  (the `cli` fixture is in conftest.py)
from tuneshift.cli import main
from tuneshift.models.specs import PACKAGED_MODELS
from tuneshift.storage.attribution import load_run

ALIASES = sorted(PACKAGED_MODELS)
FAST = ["--max-new-tokens", "3"]


def _env(**extra) -> dict:
    env = dict(os.environ)  # keeps the session's TUNESHIFT_CACHE (set by conftest)
    assert env.get("TUNESHIFT_CACHE")
    env.pop("TUNESHIFT_DEBUG", None)
    env.pop("COLUMNS", None)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8", **extra)
    return env


def sh(*args, timeout: float = 180, **env) -> Result:
    """Run ``python -m tuneshift ARGS`` in a new process."""
    p = subprocess.run(
        [sys.executable, "-m", "tuneshift", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=timeout,
    )
    return Result(p.returncode, p.stdout, p.stderr)


def no_traceback(r: Result) -> None:
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err
    assert "internal error" not in r.err, r.err


def user_error(r: Result, *needles: str) -> str:
    """Exit 2 with exactly one ``error:`` line naming every needle; returns that line."""
    no_traceback(r)
    assert r.code == 2, (r.code, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def usage_error(r: Result, *needles: str) -> None:
    """A usage error (click's): one ``error:`` line naming the command's ``--help``, exit 2, no box."""
    line = user_error(r, *needles)
    assert "--help`)" in line, line
    assert "Usage:" not in r.err and "╭" not in r.err, r.err


def summary_line(r: Result) -> str:
    lines = [ln for ln in r.err.splitlines() if " attributed, " in ln and " already done, " in ln]
    assert len(lines) == 1, r.err
    return lines[0]


def attribute_args(model, prompts, out, *extra):
    return ["attribute", "--model", model, "--prompts", prompts, "--out", out, *extra]


# ------------------------------------------------------------------ help, version, models, demo


@pytest.mark.slow  # starts a subprocess
def test_help_version_subprocess():
    r = sh("--help")
    no_traceback(r)
    assert r.code == 0
    for cmd in ("attribute", "compare", "demo", "models"):
        assert cmd in r.out
    r = sh("--version")
    assert (r.code, r.out.strip()) == (0, f"tuneshift {tuneshift.__version__}")
    r = sh("attribute", "--help")
    no_traceback(r)
    assert r.code == 0
    for opt in (
        "--model",
        "--prompts",
        "--out",
        "--adapter",
        "--ratings",
        "--responses",
        "--max-new-tokens",
        "--chat-template",
        "--batch-size",
        "--limit",
        "--dtype",
        "--threshold",
        "--levels",
        "--norm-p",
        "--min-response-tokens",
    ):
        assert opt in r.out, opt
    # the default method's options are named in the help (the path of gradient_x_input)
    for word in ("path=auto", "segmented", "forward", "segment_length=L", "n_steps=N"):
        assert word in r.out, word
    r = sh()  # no command: the help, not a crash
    no_traceback(r)
    assert r.code in (0, 2) and "Usage" in r.out + r.err and "attribute" in r.out + r.err


def test_method_option_help_names_every_option_of_the_built_in_methods():
    """The --method-option help is static text (building it from the registry at start-up would
    import numpy for --help); this keeps it from drifting from the registered option fields."""
    from tuneshift.cli.options import MethodOptions
    from tuneshift.methods.attribution.methods import get_method
    from tuneshift.methods.attribution.paths import PATHS

    text = MethodOptions.__metadata__[0].help
    for name in ("gradient_x_input", "integrated_gradients"):
        assert name in text
        for f in get_method(name).option_fields():
            assert f.name in text, (name, f.name)
    for path in PATHS:
        assert path in text, path


@pytest.mark.slow  # starts a subprocess
def test_models_lists_both_aliases_wide_terminal():
    r = sh("models", COLUMNS="200")
    no_traceback(r)
    assert r.code == 0
    for alias in ALIASES:
        assert alias in r.out
    for pm in PACKAGED_MODELS.values():
        assert pm.package in r.out


@pytest.mark.slow  # starts a subprocess
def test_models_lists_both_aliases_default_width():
    r = sh("models")
    assert r.code == 0
    for alias in ALIASES:
        assert alias in r.out


@pytest.mark.slow  # starts a subprocess
def test_demo_out_file_fails_fast_subprocess(tmp_path):
    f = tmp_path / "demo-out.txt"
    f.write_text("keep me")
    t0 = time.time()
    r = sh("demo", "--out", f, "--limit", "1")
    user_error(r, str(f), "is a file")
    assert time.time() - t0 < 60 and "loading" not in r.err  # no model was loaded
    assert f.read_text() == "keep me"


# ------------------------------------------------------------------ prompt files


@pytest.mark.slow  # starts a subprocess
def test_missing_prompt_file_subprocess(tiny_llama_dir, tmp_path):
    r = sh(*attribute_args(tiny_llama_dir, tmp_path / "nope.jsonl", tmp_path / "run"))
    user_error(r, "prompt file not found", "nope.jsonl")
    assert not (tmp_path / "run").exists()


def _non_utf8(tmp_path: Path) -> Path:
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"id": "a", "prompt": "caf\xe9 au lait"}\n')
    return p


def _directory(tmp_path: Path) -> Path:
    p = tmp_path / "folder.jsonl"
    p.mkdir()
    return p


def _directory_no_ext(tmp_path: Path) -> Path:
    p = tmp_path / "folder"
    p.mkdir()
    return p


def _unknown_ext(tmp_path: Path) -> Path:
    return H.write_prompts_jsonl(tmp_path / "prompts.txt")


def _no_valid_record(tmp_path: Path) -> Path:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "a"\n{"id": "b", "prompt": ""}\n')
    return p


def _bad_tsv(tmp_path: Path) -> Path:
    p = tmp_path / "FinalDataset.tsv"
    p.write_text("Name\tText\nx\ty\n")
    return p


@pytest.mark.parametrize(
    "make, needles",
    [
        (_non_utf8, ["latin1.jsonl", "not UTF-8"]),
        (_directory, ["folder.jsonl", "is a directory"]),
        (_directory_no_ext, ["folder", "is a directory"]),
        (_unknown_ext, ["prompts.txt", "unknown prompt file extension .txt"]),
        (_no_valid_record, ["bad.jsonl", "no valid prompt records", "line 1"]),
        (_bad_tsv, ["FinalDataset.tsv", "missing TSV column"]),
    ],
    ids=["non-utf8", "directory", "directory-no-ext", "unknown-ext", "no-valid-record", "tsv-columns"],
)
def test_bad_prompt_file(cli, tiny_llama_dir, tmp_path, make, needles):
    p = make(tmp_path)
    r = cli(*attribute_args(tiny_llama_dir, p, tmp_path / "run"))
    user_error(r, *needles)
    assert "loading" not in r.err  # refused before the model load
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_prompt_file(cli, tiny_llama_dir, tmp_path):
    p = H.write_prompts_jsonl(tmp_path / "secret.jsonl")
    p.chmod(0)
    try:
        r = cli(*attribute_args(tiny_llama_dir, p, tmp_path / "run"))
    finally:
        p.chmod(0o644)
    user_error(r, "secret.jsonl", "cannot read")


def _with_bad_line(tmp_path: Path, bad: str, at: int = 2, name: str = "prompts.jsonl") -> Path:
    lines = [json.dumps(r) for r in H.TINY_PROMPTS[:4]]
    lines.insert(at, bad)
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.slow  # starts a subprocess
def test_malformed_jsonl_line_subprocess(tiny_llama_dir, tmp_path):
    p = _with_bad_line(tmp_path, '{"id": "broken", "prompt": ', at=2)  # line 3
    r = sh(*attribute_args(tiny_llama_dir, p, tmp_path / "run", *FAST))
    no_traceback(r)
    assert r.code == 3, r.err
    bad = [ln for ln in r.err.splitlines() if "skipped input" in ln]
    assert len(bad) == 1 and "prompts.jsonl line 3" in bad[0] and "malformed JSON" in bad[0], r.err
    assert "1 input line was skipped" in r.err and "exit code 3" in r.err
    assert summary_line(r).startswith("4 attributed, 0 already done, 0 skipped")
    run = load_run(tmp_path / "run")  # nothing lost: the good records are attributed
    assert [a.record_id for a in run.attributions] == [x["id"] for x in H.TINY_PROMPTS[:4]]
    assert run.manifest["status"] == "complete" and run.manifest["counts"]["n_input_problems"] == 1


def test_skipped_input_lines_are_recorded_in_the_run(cli, tiny_llama_dir, tmp_path):
    p = _with_bad_line(tmp_path, '{"id": "broken", "prompt": ', at=2)
    r = cli(*attribute_args(tiny_llama_dir, p, tmp_path / "run", *FAST))
    assert r.code == 3 and "skipped.json" in r.err
    skipped = tmp_path / "run" / "skipped.json"
    assert skipped.exists() and "line 3" in skipped.read_text()


def test_empty_prompt_record(cli, tiny_llama_dir, tmp_path):
    p = _with_bad_line(tmp_path, json.dumps({"id": "empty", "prompt": "   "}), at=1)  # line 2
    r = cli(*attribute_args(tiny_llama_dir, p, tmp_path / "run", *FAST))
    no_traceback(r)
    assert r.code == 3, r.err
    assert "prompts.jsonl line 2: record 'empty' has an empty 'prompt'" in r.err
    assert "1 input line was skipped" in r.err
    run = load_run(tmp_path / "run")
    assert sorted(a.record_id for a in run.attributions) == sorted(x["id"] for x in H.TINY_PROMPTS[:4])


@pytest.mark.parametrize("case", ["record-id", "out-closing-tag", "out-tag", "model-dir-tag"])
def test_markup_characters_in_user_text(cli, tiny_llama_dir, tmp_path, case):
    prompts = H.write_prompts_jsonl(tmp_path / "prompts.jsonl", H.TINY_PROMPTS[:2])
    model, out, code, shown = tiny_llama_dir, tmp_path / "run", 0, None
    if case == "record-id":
        prompts = _with_bad_line(tmp_path, json.dumps({"id": "x[/b]", "prompt": ""}), at=1)
        code, shown = 3, "x[/b]"
    elif case == "out-closing-tag":
        out = tmp_path / "run[" / "x]"
        shown = str(out)
    elif case == "out-tag":
        out = tmp_path / "run[v2]"
        shown = str(out)
    else:
        model = tmp_path / "llama[v2]"
        shutil.copytree(tiny_llama_dir, model)
        shown = "llama[v2]"
    r = cli(*attribute_args(model, prompts, out, *FAST))
    assert load_run(out).attributions  # the records are saved in every case
    no_traceback(r)
    assert r.code == code and shown in r.err, r.err


LONG = " ".join(["the report is ready"] * 60)  # about 240 tokens > the tiny models' 128 positions


def test_prompt_longer_than_context(cli, tiny_llama_dir, tmp_path):
    recs = [dict(r) for r in H.TINY_PROMPTS[:3]] + [{"id": "too_long", "prompt": LONG, "instruction": ["the report"]}]
    p = H.write_prompts_jsonl(tmp_path / "long.jsonl", recs)
    r = cli(*attribute_args(tiny_llama_dir, p, tmp_path / "run", *FAST))
    no_traceback(r)
    assert r.code == 3, r.err
    assert summary_line(r).startswith("3 attributed, 0 already done, 1 skipped")
    assert "1 record was skipped" in r.err and "skipped.json" in r.err
    run = load_run(tmp_path / "run")
    assert sorted(a.record_id for a in run.attributions) == sorted(x["id"] for x in recs[:3])
    assert list(run.skipped) == ["too_long"]
    n = len(tuneshift.load_model(str(tiny_llama_dir), progress=False).tokenizer(LONG)["input_ids"])
    assert n > 128
    assert run.skipped["too_long"] == f"prompt is {n} tokens; the model's context is 128 tokens, no room for a response"
    assert json.loads((tmp_path / "run" / "skipped.json").read_text()) == run.skipped


def test_given_response_longer_than_context_is_truncated(cli, tiny_llama_dir, tmp_path):
    recs = [dict(r) for r in H.TINY_PROMPTS[:3]]
    recs[1]["response"] = LONG
    p = H.write_prompts_jsonl(tmp_path / "long_response.jsonl", recs)
    r = cli(*attribute_args(tiny_llama_dir, p, tmp_path / "run", "--responses", "given"))
    no_traceback(r)
    assert r.code == 0, r.err
    assert "0 skipped, 1 truncated to the context window" in summary_line(r)
    run = load_run(tmp_path / "run")
    by = run.by_id()
    assert len(by) == 3 and run.skipped == {}
    cut = by[recs[1]["id"]]
    assert cut.truncated and cut.n_input_tokens + cut.shape[1] == 128  # filled the window exactly
    assert not by[recs[0]["id"]].truncated and not by[recs[2]["id"]].truncated
    assert run.manifest["counts"]["n_truncated"] == 1


# ------------------------------------------------------------------ model specs


def _not_gguf(tmp_path: Path) -> Path:
    f = tmp_path / "model.bin"
    f.write_bytes(b"weights")
    return f


def _no_config(tmp_path: Path) -> Path:
    d = tmp_path / "empty_model"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"")
    return d


@pytest.mark.parametrize(
    "make, needles",
    [
        (lambda tmp: "no-such-model", ["unknown model spec 'no-such-model'", *ALIASES]),
        (lambda tmp: tmp / "missing-model", ["missing-model", "does not exist"]),
        (lambda tmp: tmp / "missing.gguf", ["missing.gguf", "does not exist"]),
        (_not_gguf, ["model.bin", "not a .gguf file"]),
        (_no_config, ["empty_model", "no config.json"]),
    ],
    ids=["unknown", "missing-path", "missing-gguf", "not-gguf", "no-config"],
)
def test_bad_model_spec(cli, tiny_prompts_file, tmp_path, make, needles):
    spec = make(tmp_path)
    r = cli(*attribute_args(spec, tiny_prompts_file, tmp_path / "run"))
    user_error(r, *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", [b"", b"GGUF garbage"], ids=["empty", "garbage"])
def test_corrupt_gguf_cli(cli, tiny_prompts_file, tmp_path, content):
    f = tmp_path / "broken.gguf"
    f.write_bytes(content)
    r = cli(*attribute_args(f, tiny_prompts_file, tmp_path / "run"))
    user_error(r, "broken.gguf")


@pytest.fixture(scope="module")
def tiny_opt_dir(tmp_path_factory) -> Path:
    """A tiny OPT (no anatomy adapter) with the byte-level tokenizer."""
    import torch
    import transformers as T

    tok = H.make_tokenizer("bpe")
    cfg = T.OPTConfig(
        vocab_size=len(tok),
        hidden_size=32,
        word_embed_proj_dim=32,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        max_position_embeddings=128,
        init_std=0.2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_opt") / "model"
    T.OPTForCausalLM(cfg).eval().save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_unsupported_family(cli, tiny_opt_dir, tiny_prompts_file, tmp_path):
    from tuneshift.errors import UnsupportedArchitectureError
    from tuneshift.models.anatomy import SUPPORTED_FAMILIES

    lm = tuneshift.load_model(str(tiny_opt_dir), progress=False)
    assert lm.family == "opt"
    with pytest.raises(UnsupportedArchitectureError) as e:
        lm.anatomy
    msg = str(e.value)
    assert "opt" in msg and "\n" not in msg and all(f in msg for f in SUPPORTED_FAMILIES)
    # Documented behaviour: `attribute` needs only embeddings + gradients, not the anatomy, so an
    # unsupported family WORKS through the CLI (all records attributed, exit 0).
    r = cli(*attribute_args(tiny_opt_dir, tiny_prompts_file, tmp_path / "run", *FAST))
    no_traceback(r)
    assert r.code == 0, r.err
    run = load_run(tmp_path / "run")
    assert len(run.attributions) == len(H.TINY_PROMPTS) and run.manifest["info"]["model"]["family"] == "opt"


# ------------------------------------------------------------------ adapters


@pytest.fixture(scope="module")
def lora_for_hidden32(tiny_llama_dir, tmp_path_factory) -> Path:
    """A LoRA adapter (r=2, q_proj/v_proj) made with peft for the hidden-32 tiny llama."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    pm = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    )
    out = tmp_path_factory.mktemp("lora32") / "adapter"
    pm.save_pretrained(str(out))
    return out


def test_adapter_applies_to_its_base(cli, tiny_llama_dir, lora_for_hidden32, tiny_prompts_file, tmp_path):
    r = cli(
        *attribute_args(
            tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--adapter", lora_for_hidden32, "--limit", "2", *FAST
        )
    )
    no_traceback(r)
    assert r.code == 0, r.err
    ident = load_run(tmp_path / "run").manifest["identity"]["model"]
    assert ident["adapter"] == str(lora_for_hidden32) and len(ident["adapter_sha256"]) == 64


def test_adapter_for_another_base(cli, tiny_model_dir_factory, lora_for_hidden32, tiny_prompts_file, tmp_path):
    other = tiny_model_dir_factory("llama", hidden_size=48, head_dim=12)
    r = cli(*attribute_args(other, tiny_prompts_file, tmp_path / "run", "--adapter", lora_for_hidden32))
    user_error(r, str(lora_for_hidden32), "does not fit", str(other))
    assert not (tmp_path / "run").exists()


def test_adapter_folder_without_config(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    ad = tmp_path / "not_an_adapter"
    ad.mkdir()
    (ad / "adapter_model.safetensors").write_bytes(b"")
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--adapter", ad))
    user_error(r, "not_an_adapter", "adapter_config.json")
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--adapter", tmp_path / "missing"))
    user_error(r, "missing")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ --out


def test_out_is_a_file(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("precious")
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, f))
    user_error(r, "results.txt", "is a file")
    assert f.read_text() == "precious"


def test_out_is_a_foreign_folder(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "cat.jpg").write_bytes(b"\xff\xd8")
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, d))
    user_error(r, "photos", "not a tuneshift run")
    assert sorted(p.name for p in d.iterdir()) == ["cat.jpg"]


def test_rerun_with_other_settings(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    out = tmp_path / "run"
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, out, "--max-new-tokens", "3", "--limit", "2"))
    assert r.code == 0, r.err
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, out, "--max-new-tokens", "5", "--limit", "2"))
    user_error(r, "max_new_tokens", "existing 3, requested 5", str(out))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the existing run is untouched
    # batch size does not change results: free to change on resume
    r = cli(
        *attribute_args(
            tiny_llama_dir, tiny_prompts_file, out, "--max-new-tokens", "3", "--limit", "2", "--batch-size", "1"
        )
    )
    assert r.code == 0 and summary_line(r).startswith("0 attributed, 2 already done"), r.err


# ------------------------------------------------------------------ option values


@pytest.mark.parametrize(
    "opt, needles",
    [
        (["--chat-template", "xyz"], ["--chat-template", "auto, none or a Jinja template file", "xyz is not a file"]),
        (["--responses", "cross"], ["--responses-from", "is needed with responses cross"]),
        (["--max-new-tokens", "0"], ["--max-new-tokens", "at least 1"]),
        (["--batch-size", "0"], ["--batch-size", "at least 1"]),
        (["--limit", "0"], ["limit", "positive"]),
    ],
    ids=["chat-template", "cross-without-source", "max-new-tokens", "batch-size", "limit"],
)
def test_bad_option_values(cli, tiny_llama_dir, tiny_prompts_file, tmp_path, opt, needles):
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", *opt))
    user_error(r, *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "opt, needles",
    [
        (["--responses", "foo"], ["'--responses'", "'foo' is not one of 'own', 'gold', 'cross'"]),
        (["--join", "tab"], ["'--join'", "'tab' is not one of 'none', 'space'"]),
    ],
    ids=["responses", "join"],
)
def test_bad_choices_are_usage_errors(cli, tiny_llama_dir, tiny_prompts_file, tmp_path, opt, needles):
    # choices are enums: click refuses them before anything runs, naming the allowed values
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", *opt))
    usage_error(r, *needles)  # one line, not typer's box
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "opt, needles",
    [
        (["--dtype", "int8"], ["--dtype must be one of float32, bfloat16, float16, float64, not 'int8'"]),
        (["--dtype", "float16"], ["--dtype float16 is for GPUs"]),
        (["--device", "cuda:7"], ["--device cuda:7"]),
        (
            ["--method", "saliency"],
            ["unknown attribution method 'saliency'", "registered methods:", "gradient_x_input"],
        ),
        (["--target", "entropy"], ["unknown attribution target 'entropy'", "log_probability, logit, probability"]),
        (["--method-option", "n_steps=3"], ["method 'gradient_x_input' has no option 'n_steps'"]),
        (["--method-option", "n_steps"], ["--method-option takes NAME=VALUE", "'n_steps'"]),
    ],
    ids=["dtype", "dtype-cpu-half", "device", "method", "target", "method-option-name", "method-option-form"],
)
def test_bad_method_or_target(cli, tiny_llama_dir, tiny_prompts_file, tmp_path, opt, needles):
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", *opt))
    user_error(r, *needles)
    assert not (tmp_path / "run").exists()


def test_method_and_target_are_part_of_the_run(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    out = tmp_path / "run"
    args = attribute_args(tiny_llama_dir, tiny_prompts_file, out, "--responses", "given", "--limit", "2")
    r = cli(*args, "--target", "log_probability", "--method", "gradient_x_input")
    assert r.code == 0, r.err
    run = load_run(out)
    assert run.manifest["identity"]["method"] == {
        "name": "gradient_x_input",
        "target": "log_probability",
        "options": {},
    }
    assert run.method["target"] == "log_probability" and len(run.attributions) == 2
    r = cli(*args, "--target", "log_probability")  # same settings: resumed
    assert r.code == 0 and summary_line(r).startswith("0 attributed, 2 already done"), r.err
    r = cli(*args)  # the default target is probability: refused, one line
    user_error(r, "method.target: existing 'log_probability', requested 'probability'", str(out))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--max-new-tokens", "abc"], "--max-new-tokens"),
        (["--batch-size", "1.5"], "--batch-size"),
        (["--bogus"], "--bogus"),
    ],
    ids=["int-not-a-number", "float-for-int", "unknown-option"],
)
def test_usage_errors(cli, tiny_llama_dir, tiny_prompts_file, tmp_path, args, needle):
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", *args))
    usage_error(r, needle)
    r = cli("attribute", "--prompts", tiny_prompts_file, "--out", tmp_path / "run")  # --model missing
    usage_error(r, "--model")
    r = cli("no-such-command")
    usage_error(r, "no-such-command")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ compare


@pytest.fixture(scope="module")
def two_runs(tiny_llama_dir, tiny_llama_other_dir, tiny_prompts_file, tmp_path_factory):
    """Runs of two tiny llamas (seeds 0 and 1) over the same prompts (given responses)."""
    root = tmp_path_factory.mktemp("compare")
    for name, model in (("base", tiny_llama_dir), ("tuned", tiny_llama_other_dir)):
        with pytest.raises(SystemExit) as e:
            main(attribute_args(model, tiny_prompts_file, root / name, "--responses", "given"))
        assert e.value.code == 0
    return root / "base", root / "tuned"


def _kept_scores(run) -> list[float]:
    return [a.instruction_score for a in run.attributions if not a.short_response and np.isfinite(a.instruction_score)]


def test_compare_two_runs(cli, two_runs, tmp_path):
    from scipy import stats

    base_dir, tuned_dir = two_runs
    r = cli("compare", base_dir, tuned_dir)
    no_traceback(r)
    assert r.code == 0 and "overall" in r.out and "Instruction score" in r.out, r.err

    # a handful of records: below the default sample rule (10) the JSON has no p and says why
    d10 = json.loads(cli("compare", base_dir, tuned_dir, "--json").out)
    ov10 = [c for c in d10["contrasts"] if c["group"] == "overall"][0]
    assert ov10["p"] is None and ov10["reason"].startswith("too few")
    prim = [r for r in d10["paired"] if r["group"] == "overall" and r["control"] == "score"][0]
    assert prim["role"] == "primary" and prim["ci_low"] is None and prim["reason"].startswith("too few pairs")
    assert d10["min_n"] == 10
    bad = cli("compare", base_dir, tuned_dir, "--min-n", "1")
    assert bad.code == 2 and "min_n" in bad.err.replace("-", "_") and "Traceback" not in bad.err

    r = cli("compare", base_dir, tuned_dir, "--json", "--min-n", "2")
    no_traceback(r)
    assert r.code == 0
    d = json.loads(r.out)
    overall = [c for c in d["contrasts"] if c["group"] == "overall"]
    assert len(overall) == 1
    ov = overall[0]
    base, tuned = load_run(base_dir), load_run(tuned_dir)
    xs, ys = _kept_scores(base), _kept_scores(tuned)
    n_short = sum(a.short_response for a in base.attributions)
    assert n_short >= 1 and len(xs) >= 2 and len(ys) >= 2  # the short "Light"/"positive" answers are excluded
    assert d["excluded"]["base"]["short_response"] == n_short
    assert ov["base"] == pytest.approx({"mean": np.mean(xs), "std": np.std(xs, ddof=0), "n": len(xs)}, rel=1e-12)
    assert ov["tuned"] == pytest.approx({"mean": np.mean(ys), "std": np.std(ys, ddof=0), "n": len(ys)}, rel=1e-12)
    want = stats.ttest_ind(xs, ys, equal_var=False, alternative="less")
    assert ov["t"] == pytest.approx(want.statistic, rel=1e-9)
    assert ov["p"] == pytest.approx(want.pvalue, rel=1e-9)
    assert ov["n_pairs"] == len(
        set(a.record_id for a in base.attributions if not a.short_response)
        & set(a.record_id for a in tuned.attributions if not a.short_response)
    )
    assert d["same_dataset"] is True

    r = cli("compare", base_dir, tuned_dir, "--json", "--include-short", "--min-n", "2")
    assert r.code == 0
    ov_all = [c for c in json.loads(r.out)["contrasts"] if c["group"] == "overall"][0]
    assert ov_all["base"]["n"] == len(base.attributions)

    out = tmp_path / "cmp"
    r = cli("compare", base_dir, tuned_dir, "--out", out, "--min-n", "2")
    no_traceback(r)
    assert r.code == 0 and "comparison.json" in r.err
    saved = json.loads((out / "comparison.json").read_text())
    sov = [c for c in saved["contrasts"] if c["group"] == "overall"][0]
    assert sov["base"] == ov["base"] and sov["tuned"] == ov["tuned"] and sov["p"] == pytest.approx(ov["p"])
    assert "overall" in (out / "comparison.md").read_text()


def test_compare_errors(cli, two_runs, tmp_path):
    base_dir, tuned_dir = two_runs
    r = cli("compare", tmp_path / "no-run-here", tuned_dir)
    user_error(r, "no-run-here", "does not exist")
    folder = tmp_path / "just-a-folder"
    folder.mkdir()
    r = cli("compare", base_dir, folder)
    user_error(r, "just-a-folder", "not a tuneshift run")
    f = tmp_path / "table.md"
    f.write_text("mine")
    r = cli("compare", base_dir, tuned_dir, "--out", f)
    user_error(r, "table.md", "is a file")
    assert f.read_text() == "mine"
    r = cli("compare", base_dir)
    usage_error(r)


# ------------------------------------------------------------------ resume and interrupt


def test_resume_through_cli(cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    out = tmp_path / "run"
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, out, "--limit", "2", *FAST))
    assert r.code == 0 and summary_line(r).startswith("2 attributed, 0 already done"), r.err
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, out, "--limit", "4", *FAST))
    no_traceback(r)
    assert r.code == 0 and summary_line(r).startswith("2 attributed, 2 already done"), r.err
    run = load_run(out)
    assert [a.record_id for a in run.attributions] == [x["id"] for x in H.TINY_PROMPTS[:4]]
    assert run.manifest["resumed"] is True and run.manifest["status"] == "complete"


def _interrupt_after_first_batch(monkeypatch):
    import tuneshift.pipelines.attribute_run as ar

    real = ar.attribute_batch
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ar, "attribute_batch", interrupted)
    return lambda: monkeypatch.setattr(ar, "attribute_batch", real)


def test_interrupt_is_resumable(cli, tiny_llama_dir, tiny_prompts_file, tmp_path, monkeypatch):
    restore = _interrupt_after_first_batch(monkeypatch)
    out = tmp_path / "run"
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, out, "--batch-size", "2", *FAST))
    no_traceback(r)
    assert r.code == 130, r.err
    run = load_run(out)
    assert len(run.attributions) == 2 and run.manifest["status"] == "running"  # the finished batch is saved
    restore()
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, out, "--batch-size", "2", *FAST))
    assert r.code == 0 and summary_line(r).startswith("4 attributed, 2 already done"), r.err
    run = load_run(out)
    assert [a.record_id for a in run.attributions] == [x["id"] for x in H.TINY_PROMPTS]
    assert run.manifest["status"] == "complete"


def test_interrupt_message(cli, tiny_llama_dir, tiny_prompts_file, tmp_path, monkeypatch):
    _interrupt_after_first_batch(monkeypatch)
    r = cli(*attribute_args(tiny_llama_dir, tiny_prompts_file, tmp_path / "run", "--batch-size", "2", *FAST))
    assert r.code == 130
    assert "interrupted" in r.err and "run the same command again to resume" in r.err


# ------------------------------------------------------------------ show


def test_show(cli, two_runs, tmp_path):
    base_dir, _ = two_runs
    r = cli("show", base_dir)
    no_traceback(r)
    assert r.code == 0 and "rewrite" in r.out and "instruction score" in r.out, r.err
    r = cli("show", base_dir, "--id", "poem")
    assert r.code == 0 and "poem" in r.out
    png = tmp_path / "figs" / "poem.png"
    r = cli("show", base_dir, "--id", "poem", "--png", png)
    no_traceback(r)
    assert r.code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "poem.png" in r.err


def test_show_errors(cli, two_runs, tmp_path):
    base_dir, _ = two_runs
    user_error(cli("show", tmp_path / "no-run"), "no-run", "does not exist")
    user_error(cli("show", base_dir, "--id", "nope"), "no record 'nope'", "rewrite")
    user_error(cli("show", base_dir, "--png", tmp_path), "--png", "is a directory")
    usage_error(cli("show"))
