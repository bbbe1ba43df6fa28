"""Guards found by a new-user trial: compare refuses different prompt files, warns on partial
runs, writes strict JSON; bad post-processing options are refused before any work; file modes."""

from __future__ import annotations

import json
import stat

import pytest

import helpers_tiny as H
from tuneshift.cli import main
from tuneshift.errors import InputFileError, TuneshiftError
from tuneshift.methods.attribution.api import AttributionOptions
from tuneshift.methods.attribution.importance import ImportanceSettings
from tuneshift.stats.compare import compare_runs


def _run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr()


@pytest.fixture(scope="module")
def two_prompt_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prompts")
    a = H.write_prompts_jsonl(d / "a.jsonl", H.TINY_PROMPTS[:3])
    b = H.write_prompts_jsonl(d / "b.jsonl", H.TINY_PROMPTS[1:4])
    return a, b


def _attribute(model_dir, prompts, out, capsys, extra=()):
    code, _ = _run(
        [
            "attribute",
            "--model",
            str(model_dir),
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            "--responses",
            "given",
            *extra,
        ],
        capsys,
    )
    assert code == 0
    return out


def test_compare_refuses_runs_over_different_prompt_files(
    tiny_llama_dir, tiny_llama_other_dir, two_prompt_files, tmp_path, capsys
):
    a, b = two_prompt_files
    ra = _attribute(tiny_llama_dir, a, tmp_path / "ra", capsys)
    rb = _attribute(tiny_llama_other_dir, b, tmp_path / "rb", capsys)
    with pytest.raises(InputFileError, match="different prompt files"):
        compare_runs(ra, rb)
    code, cap = _run(["compare", str(ra), str(rb)], capsys)
    assert code == 2 and "different prompt files" in cap.err and "Traceback" not in cap.err


def test_compare_json_is_strict_and_partial_runs_are_flagged(
    tiny_llama_dir, tiny_llama_other_dir, two_prompt_files, tmp_path, capsys
):
    a, _ = two_prompt_files
    ra = _attribute(tiny_llama_dir, a, tmp_path / "ra", capsys)
    rb = _attribute(tiny_llama_other_dir, a, tmp_path / "rb", capsys)
    m = json.loads((rb / "manifest.json").read_text())
    m["status"] = "running"
    (rb / "manifest.json").write_text(json.dumps(m))
    code, cap = _run(["compare", str(ra), str(rb), "--json", "--out", str(tmp_path / "cmp")], capsys)
    assert code == 0
    reject = lambda c: (_ for _ in ()).throw(ValueError(c))  # noqa: E731 -- NaN/Infinity are not JSON
    d = json.loads(cap.out, parse_constant=reject)
    assert any("not complete" in w for w in d["warnings"])
    json.loads((tmp_path / "cmp" / "comparison.json").read_text(), parse_constant=reject)
    assert "not complete" in (tmp_path / "cmp" / "comparison.md").read_text()
    mode = stat.S_IMODE((tmp_path / "cmp" / "comparison.json").stat().st_mode)
    assert mode & 0o044  # readable by group/others (umask permitting), not mkstemp's 0600


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(norm_p=0), "norm_p"),
        (dict(norm_p=1), "norm_p"),
        (dict(levels=0), "levels"),
        (dict(threshold=-1), "threshold"),
        (dict(min_response_tokens=-1), "min_response_tokens"),
    ],
)
def test_bad_post_processing_options_are_refused_up_front(settings, match):
    with pytest.raises(TuneshiftError, match=match):
        AttributionOptions(importance=ImportanceSettings(**settings))


def test_threads_option(tiny_llama_dir, two_prompt_files, tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        code, cap = _run(
            [
                "attribute",
                "--model",
                str(tiny_llama_dir),
                "--prompts",
                str(two_prompt_files[0]),
                "--out",
                str(tmp_path / "r"),
                "--responses",
                "given",
                "--threads",
                "1",
            ],
            capsys,
        )
        assert code == 0 and torch.get_num_threads() == 1
        code, cap = _run(
            [
                "attribute",
                "--model",
                str(tiny_llama_dir),
                "--prompts",
                str(two_prompt_files[0]),
                "--out",
                str(tmp_path / "r2"),
                "--threads",
                "0",
            ],
            capsys,
        )
        assert code == 2 and "--threads must be >= 1" in cap.err
    finally:
        torch.set_num_threads(before)
