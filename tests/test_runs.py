"""Run storage (manifest + Parquet parts), resume after a kill, and refusal of foreign folders."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import helpers_tiny as H
import tuneshift
import tuneshift.pipelines.attribute_run as attribute_run_mod
from tuneshift.data import read_prompts
from tuneshift.errors import InputFileError, RunMismatchError
from tuneshift.methods.attribution import Attribution, AttributionOptions, attribute_batch
from tuneshift.pipelines.attribute_run import run_attribution
from tuneshift.storage.attribution import Run, load_run

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

OPTS = dict(responses="generate", max_new_tokens=4)


def _opts(**kw) -> AttributionOptions:
    return AttributionOptions(**{**OPTS, **kw})


def _parts(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "results").glob("part-*.parquet"))


def _same_attribution(a: Attribution, b: Attribution, atol: float = 0.0):
    assert a.record_id == b.record_id
    assert a.response_token_ids.tolist() == b.response_token_ids.tolist()
    assert a.prompt_token_ids.tolist() == b.prompt_token_ids.tolist()
    assert a.prompt_roles == b.prompt_roles and a.prompt_tokens == b.prompt_tokens
    assert a.instruction_mask.tolist() == b.instruction_mask.tolist()
    assert a.raw.shape == b.raw.shape
    np.testing.assert_allclose(a.raw, b.raw, rtol=0, atol=atol)
    np.testing.assert_allclose(a.density, b.density, rtol=0, atol=max(atol, 1e-12))
    assert a.instruction_score == pytest.approx(b.instruction_score, abs=max(atol, 1e-12), nan_ok=True)
    assert (a.truncated, a.short_response, a.ended_with_eos) == (b.truncated, b.short_response, b.ended_with_eos)


def _expected_weights_sha(model_dir: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(p for p in model_dir.iterdir() if p.suffix == ".safetensors"):
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).hexdigest().encode())
    return h.hexdigest()


# ------------------------------------------------------------------ a complete run


@pytest.fixture(scope="module")
def done_run(tmp_path_factory, tiny_llama, tiny_prompts_file):
    out = tmp_path_factory.mktemp("runs") / "run"
    prompts = read_prompts(tiny_prompts_file)
    summary = run_attribution(tiny_llama, prompts, out, _opts(batch_size=2), progress=False)
    return out, prompts, summary


def test_run_results_equal_attribute_batch(done_run, tiny_llama):
    out, prompts, summary = done_run
    assert summary.n_records == summary.n_attributed == 6
    assert summary.n_done_before == summary.n_skipped == 0
    run = load_run(out)
    ids = [r.id for r in prompts.records]
    assert [a.record_id for a in run.attributions] == ids
    assert run.skipped == {}
    assert len(_parts(out)) == 3  # one part per batch of 2
    for start in range(0, 6, 2):  # the same batches as the run
        for ref in attribute_batch(tiny_llama, prompts.records[start : start + 2], _opts(batch_size=2)):
            got = run.by_id()[ref.record_id]
            _same_attribution(got, ref)  # same process, same batches and threads: float32 raw stored exactly
            assert got.group == ref.group and got.rating == ref.rating
            assert got.response_text == ref.response_text and got.n_input_tokens == ref.n_input_tokens
            assert np.array_equal(got.prompt_positions, ref.prompt_positions)
    assert run.by_id()["classify"].rating == 3 and run.by_id()["poem"].group == "write"
    assert run.by_id()["rewrite"].rating is None


def test_run_to_pandas(done_run):
    out, prompts, _ = done_run
    run = load_run(out)
    df = run.to_pandas()
    assert list(df.columns) == [
        "id",
        "group",
        "rating",
        "instruction_score",
        "n_prompt_tokens",
        "n_response_tokens",
        "n_instruction_tokens",
        "short_response",
        "truncated",
        "ended_with_eos",
        "response_text",
    ]
    assert df["id"].tolist() == [r.id for r in prompts.records]
    a = run.by_id()["rewrite"]
    row = df.set_index("id").loc["rewrite"]
    assert row["n_prompt_tokens"] == a.raw.shape[0] and row["n_response_tokens"] == a.raw.shape[1]
    assert row["n_instruction_tokens"] == int(a.instruction_mask.sum()) > 0
    assert row["instruction_score"] == pytest.approx(a.instruction_score)
    assert df.equals(run.df)


def test_manifest(done_run, tiny_llama, tiny_llama_dir, tiny_prompts_file):
    out, _, _ = done_run
    m = json.loads((out / "manifest.json").read_text())
    assert m["tuneshift_run"] == 1 and m["kind"] == "attribution"
    assert m["status"] == "complete" and m["resumed"] is False
    model = m["identity"]["model"]
    assert model["weights_sha256"] == _expected_weights_sha(tiny_llama_dir) == tiny_llama.spec.weights_sha256
    assert model["kind"] == "local" and model["dtype"] == "float32" and model["spec"] == str(tiny_llama_dir)
    assert m["identity"]["dataset"] == {
        "sha256": hashlib.sha256(tiny_prompts_file.read_bytes()).hexdigest(),
        "format": "jsonl",
        "ratings_sha256": None,
    }
    assert m["identity"]["options"] == {
        "responses": "generate",
        "max_new_tokens": 4,
        "chat_template": "auto",
        "span_rules": "spans-v2",
        "importance": {"levels": 10, "threshold": 7, "norm_p": 4, "min_response_tokens": 5},
    }  # batch_size is not part of the identity...
    assert m["info"]["batch_size"] == 2  # ...but recorded
    assert m["info"]["dataset_path"] == str(tiny_prompts_file)
    assert m["info"]["model"]["family"] == "llama"
    import numpy
    import pyarrow
    import torch
    import transformers

    versions = m["package_versions"]
    assert versions["tuneshift"] == tuneshift.__version__
    assert versions["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert versions["transformers"] == transformers.__version__
    assert versions["numpy"] == numpy.__version__ and versions["pyarrow"] == pyarrow.__version__
    assert m["counts"]["n_records"] == 6 and m["counts"]["n_skipped"] == 0


def test_parquet_only_no_pickle(done_run):
    out, _, _ = done_run
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["manifest.json"] + [f"results/part-{i:05d}.parquet" for i in range(3)]
    for p in _parts(out):
        data = p.read_bytes()
        assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"
        assert pq.read_table(p).num_rows == 2
    assert not [p for p in out.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt", ".npy", ".npz")]


def test_rerun_complete_run_does_nothing(done_run, tiny_llama, monkeypatch):
    out, prompts, _ = done_run
    before = {p: p.read_bytes() for p in _parts(out)}
    monkeypatch.setattr(attribute_run_mod, "attribute_batch", lambda *a, **k: pytest.fail("recomputed"))
    s = run_attribution(tiny_llama, prompts, out, _opts(batch_size=5), progress=False)  # batch size may change
    assert s.n_done_before == 6 and s.n_attributed == 0
    assert {p: p.read_bytes() for p in _parts(out)} == before
    assert json.loads((out / "manifest.json").read_text())["resumed"] is True


# ------------------------------------------------------------------ refusing


def test_rerun_with_other_options_is_refused(done_run, tiny_llama):
    out, prompts, _ = done_run
    with pytest.raises(RunMismatchError, match=r"options\.max_new_tokens: existing 4, requested 5"):
        run_attribution(tiny_llama, prompts, out, _opts(max_new_tokens=5), progress=False)
    with pytest.raises(RunMismatchError, match=r"options\.importance\.threshold"):
        from tuneshift.methods.attribution import ImportanceSettings

        run_attribution(tiny_llama, prompts, out, _opts(importance=ImportanceSettings(threshold=6)), progress=False)
    with pytest.raises(RunMismatchError, match=r"options\.responses"):
        run_attribution(tiny_llama, prompts, out, _opts(responses="given"), progress=False)


def test_rerun_with_another_model_is_refused(done_run, tiny_llama_other_dir):
    out, prompts, _ = done_run
    other = tuneshift.load_model(str(tiny_llama_other_dir), progress=False)
    with pytest.raises(RunMismatchError) as e:
        run_attribution(other, prompts, out, _opts(), progress=False)
    assert "model.weights_sha256" in str(e.value) and "model.spec" in str(e.value)
    assert str(out) in str(e.value)
    assert len(_parts(out)) == 3 and json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_rerun_with_another_dataset_is_refused(done_run, tiny_llama, tmp_path):
    out, _, _ = done_run
    other = H.write_prompts_jsonl(tmp_path / "other.jsonl", H.TINY_PROMPTS[:3])
    with pytest.raises(RunMismatchError, match=r"dataset\.sha256"):
        run_attribution(tiny_llama, read_prompts(other), out, _opts(), progress=False)


# ------------------------------------------------------------------ method and target in the identity


def test_manifest_records_method_and_target(done_run):
    out, _, _ = done_run
    m = json.loads((out / "manifest.json").read_text())
    assert m["identity"]["method"] == {"name": "gradient_x_input", "target": "probability", "options": {}}
    assert load_run(out).method == {"name": "gradient_x_input", "target": "probability", "options": {}}


def test_rerun_with_another_method_or_target_is_refused(done_run, tiny_llama):
    out, prompts, _ = done_run
    before = {p: p.read_bytes() for p in _parts(out)}
    with pytest.raises(RunMismatchError, match=r"method\.target: existing 'probability', requested 'logit'") as e:
        run_attribution(tiny_llama, prompts, out, _opts(target="logit"), progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(
        RunMismatchError, match=r"method\.name: existing 'gradient_x_input', requested 'gradient_x_input_reference'"
    ):
        run_attribution(tiny_llama, prompts, out, _opts(method="gradient_x_input_reference"), progress=False)
    assert {p: p.read_bytes() for p in _parts(out)} == before


def test_run_without_method_reads_as_gradient_x_input(done_run, tiny_llama, tmp_path, monkeypatch):
    """Run directories written before methods/targets were recorded: gradient_x_input / probability."""
    import shutil

    src, prompts, _ = done_run
    old = tmp_path / "old-run"
    shutil.copytree(src, old)
    m = json.loads((old / "manifest.json").read_text())
    del m["identity"]["method"]
    del m["info"]["method_options"]
    (old / "manifest.json").write_text(json.dumps(m, indent=2))
    assert load_run(old).method == {"name": "gradient_x_input", "target": "probability", "options": {}}
    # resuming it with the default method is accepted (nothing to recompute)...
    monkeypatch.setattr(attribute_run_mod, "attribute_batch", lambda *a, **k: pytest.fail("recomputed"))
    s = run_attribution(tiny_llama, prompts, old, _opts(), progress=False)
    assert s.n_done_before == 6 and s.n_attributed == 0
    assert json.loads((old / "manifest.json").read_text())["identity"]["method"]["name"] == "gradient_x_input"
    # ...and with another target refused
    (old / "manifest.json").write_text(json.dumps(m, indent=2))
    with pytest.raises(RunMismatchError, match=r"method\.target: existing 'probability', requested 'log_probability'"):
        run_attribution(tiny_llama, prompts, old, _opts(target="log_probability"), progress=False)


def test_compare_refuses_runs_of_different_targets(done_run, tiny_llama, tmp_path):
    from tuneshift.stats.compare import compare_runs

    out, prompts, _ = done_run
    other = tmp_path / "logit"
    run_attribution(tiny_llama, prompts, other, _opts(target="logit", batch_size=6), progress=False)
    assert load_run(other).method["target"] == "logit"
    with pytest.raises(
        InputFileError,
        match="different attribution methods \\(gradient_x_input/probability vs gradient_x_input/logit\\)",
    ):
        compare_runs(out, other)
    import shutil

    shutil.copytree(out, tmp_path / "copy")
    assert compare_runs(out, tmp_path / "copy").same_dataset  # same method: fine


def test_out_is_a_file(tiny_llama, tiny_prompts_file, tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("not a run")
    with pytest.raises(InputFileError, match="is a file"):
        run_attribution(tiny_llama, read_prompts(tiny_prompts_file), f, _opts(), progress=False)
    assert f.read_text() == "not a run"


def test_out_is_a_foreign_folder(tiny_llama, tiny_prompts_file, tmp_path):
    d = tmp_path / "mydata"
    d.mkdir()
    (d / "notes.md").write_text("mine")
    with pytest.raises(InputFileError, match="not a tuneshift run"):
        run_attribution(tiny_llama, read_prompts(tiny_prompts_file), d, _opts(), progress=False)
    assert sorted(p.name for p in d.iterdir()) == ["notes.md"]  # nothing written
    with pytest.raises(InputFileError):
        load_run(d)
    with pytest.raises(InputFileError):
        load_run(tmp_path / "missing")


def test_empty_existing_folder_is_accepted(tiny_llama, tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    prompts = read_prompts(H.write_prompts_jsonl(tmp_path / "p.jsonl", H.TINY_PROMPTS[:1]))
    s = run_attribution(tiny_llama, prompts, d, _opts(), progress=False)
    assert s.n_attributed == 1 and [a.record_id for a in load_run(d).attributions] == ["rewrite"]


def test_skipped_records_are_stored(tiny_llama, tmp_path):
    recs = H.TINY_PROMPTS[:2] + [{"id": "too_long", "prompt": "Please send the report to the team now. " * 30}]
    prompts = read_prompts(H.write_prompts_jsonl(tmp_path / "p.jsonl", recs))
    s = run_attribution(tiny_llama, prompts, tmp_path / "run", _opts(batch_size=3), progress=False)
    assert (s.n_attributed, s.n_skipped) == (2, 1)
    run = load_run(tmp_path / "run")
    assert [a.record_id for a in run.attributions] == ["rewrite", "summary"]
    assert list(run.skipped) == ["too_long"] and "context is 128 tokens" in run.skipped["too_long"]
    assert json.loads((tmp_path / "run" / "skipped.json").read_text()) == run.skipped
    # the skipped record is tried again on resume, and skipped again
    s2 = run_attribution(tiny_llama, prompts, tmp_path / "run", _opts(batch_size=3), progress=False)
    assert (s2.n_done_before, s2.n_attributed, s2.n_skipped) == (2, 0, 1)
    # a copy keeps the skipped records
    run.save(tmp_path / "copy")
    assert Run.load(tmp_path / "copy").skipped == run.skipped


def test_run_round_trip_save_load(done_run, tmp_path):
    out, prompts, _ = done_run
    run = Run.load(out)
    assert load_run(out).to_dict() == run.to_dict()  # load_run is an alias
    d = run.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert (
        d["kind"] == "attribution"
        and d["path"] == str(out)
        and d["manifest"] == json.loads((out / "manifest.json").read_text())
    )
    assert d["summary"] == {"model": run.model_name, "n_attributed": 6, "n_skipped": 0}
    written = run.save(tmp_path / "copy")
    assert list(written) == ["results/part-00000.parquet", "manifest.json"]  # no skipped.json: nothing skipped
    back = Run.load(tmp_path / "copy")
    assert back.manifest == run.manifest and back.skipped == run.skipped
    assert [a.record_id for a in back.attributions] == [r.id for r in prompts.records]
    for a, b in zip(run.attributions, back.attributions):
        _same_attribution(a, b)  # float32 raw stored exactly
        assert (a.group, a.rating, a.response_text, a.n_input_tokens) == (
            b.group,
            b.rating,
            b.response_text,
            b.n_input_tokens,
        )
        assert np.array_equal(a.prompt_positions, b.prompt_positions) and a.unlocated_spans == b.unlocated_spans
    assert back.to_dict()["summary"] == d["summary"]
    with pytest.raises(InputFileError, match="not empty"):
        run.save(tmp_path / "copy")
    with pytest.raises(InputFileError, match="not empty"):
        run.save(out)  # never over the run itself
    (tmp_path / "f").write_text("")
    with pytest.raises(InputFileError, match="is a file"):
        run.save(tmp_path / "f")


# ------------------------------------------------------------------ resume after a kill

_CHILD = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)
    import tuneshift
    import tuneshift.pipelines.attribute_run as ar
    from tuneshift.data import read_prompts
    from tuneshift.methods.attribution import AttributionOptions

    model_dir, prompts_path, out = sys.argv[1:4]
    real = ar.attribute_batch
    calls = []

    def stalling(*a, **k):  # the 3rd batch never finishes: the parent kills us meanwhile
        calls.append(1)
        if len(calls) >= 3:
            time.sleep(600)
        return real(*a, **k)

    ar.attribute_batch = stalling
    loaded = tuneshift.load_model(model_dir, progress=False)
    ar.run_attribution(loaded, read_prompts(prompts_path), out,
                       AttributionOptions(responses="generate", max_new_tokens=4, batch_size=1), progress=False)
    """
)


@pytest.mark.slow  # starts a subprocess
def test_resume_after_kill(tiny_llama, tiny_llama_dir, tiny_prompts_file, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tiny_llama_dir), str(tiny_prompts_file), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        deadline = time.time() + 120
        while len(_parts(out)) < 2:
            if proc.poll() is not None:
                pytest.fail(f"child exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("no part file after 120 s")
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    parts = _parts(out)
    assert len(parts) == 2  # two records finished, the third was in progress
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "running"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in parts}
    prompts = read_prompts(tiny_prompts_file)
    finished = {a.record_id for a in load_run(out).attributions}
    assert finished == {"rewrite", "summary"}

    seen: list[str] = []
    real = attribute_run_mod.attribute_batch

    def counting(loaded, records, *a, **k):
        seen.extend(r.id for r in records)
        return real(loaded, records, *a, **k)

    monkeypatch.setattr(attribute_run_mod, "attribute_batch", counting)
    s = run_attribution(tiny_llama, prompts, out, _opts(batch_size=1), progress=False)
    assert seen == ["answer", "translate", "classify", "poem"]  # finished records are not recomputed
    assert (s.n_done_before, s.n_attributed, s.n_skipped) == (2, 4, 0)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in _parts(out)[:2]} == before
    assert len(_parts(out)) == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] is True

    monkeypatch.setattr(attribute_run_mod, "attribute_batch", real)
    ref_dir = tmp_path / "uninterrupted"
    run_attribution(tiny_llama, prompts, ref_dir, _opts(batch_size=1), progress=False)
    resumed, ref = load_run(out), load_run(ref_dir)
    ids = [a.record_id for a in resumed.attributions]
    assert ids == [r.id for r in prompts.records] and len(set(ids)) == len(ids)
    assert ids == [a.record_id for a in ref.attributions]
    for a, b in zip(resumed.attributions, ref.attributions):
        # two processes may sum in other orders (threads): |raw| <= ~2e-3 for the tiny model and
        # float32 order differences are ~1e-9 absolute, so 1e-7 is a bound with margin
        _same_attribution(a, b, atol=1e-7)
    assert not list(out.rglob(".tmp-*"))


def test_a_heads_or_concepts_run_is_not_read_as_an_attribution_run(tmp_path):
    # `compare HEADS_DIR CONCEPTS_DIR` said "the runs share no record id"; it names the kind now
    import json

    from tuneshift.errors import InputFileError
    from tuneshift.storage.attribution import load_run

    for kind in ("heads", "concepts"):
        d = tmp_path / kind
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"tuneshift_run": 1, "kind": kind, "identity": {}}))
        with pytest.raises(InputFileError, match=f"is a tuneshift {kind} result, not a run of kind attribution"):
            load_run(d)
