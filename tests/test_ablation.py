"""The causal check (issue 20): span ablations, response log-probabilities, the run, the comparison."""

import json
import math

import numpy as np
import pytest
import torch

from helpers_tiny import assert_one_line_error
from tuneshift.methods.ablation.core import ablate_tokens, filler_token_id, response_logprobs, swap_donor
from tuneshift.stats.ablation_compare import share_ci, spearman_ci

IDS = [1, 10, 11, 12, 20, 21, 30]
ROLES = ["bos", "instruction", "instruction", "prompt", "context", "context", "template"]


def test_variants_hand_worked():
    assert ablate_tokens(IDS, ROLES, "instruction", "delete") == [1, 12, 20, 21, 30]
    assert ablate_tokens(IDS, ROLES, "context", "delete") == [1, 10, 11, 12, 30]
    assert ablate_tokens(IDS, ROLES, "instruction", "mask", filler_id=99) == [1, 99, 99, 12, 20, 21, 30]
    assert ablate_tokens(IDS, ROLES, "instruction", "swap", donor_ids=[7, 8, 9]) == [1, 7, 8, 9, 12, 20, 21, 30]
    # a span in two pieces is replaced as one block at its first token
    roles = ["bos", "instruction", "prompt", "instruction", "template"]
    assert ablate_tokens([1, 2, 3, 4, 5], roles, "instruction", "swap", donor_ids=[8]) == [1, 8, 3, 5]
    with pytest.raises(ValueError, match="no context"):
        ablate_tokens([1, 2], ["bos", "instruction"], "context", "delete")
    with pytest.raises(ValueError, match="filler"):
        ablate_tokens(IDS, ROLES, "instruction", "mask")


def test_swap_donor_rule():
    cands = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "c1": "c"}
    d = swap_donor("a1", "a", cands, seed=0)
    assert d in {"b1", "b2", "c1"}
    assert swap_donor("a1", "a", dict(reversed(list(cands.items()))), seed=0) == d  # order does not matter
    assert {swap_donor("a1", "a", cands, seed=s) for s in range(20)} == {"b1", "b2", "c1"}  # the seed moves it
    assert swap_donor("x", "g", {"x": "g", "y": "g"}) == "y"  # one group: any other record
    assert swap_donor("x", "g", {"x": "g"}) is None


def _independent_logprob(model, prompt, response):
    """log p(response | prompt) from the full logits of one unpadded sequence, float64 log-softmax."""
    ids = torch.tensor([list(prompt) + list(response)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return np.array([float(lp[len(prompt) - 1 + j, y]) for j, y in enumerate(response)])


@pytest.mark.numeric
@pytest.mark.parametrize("family,kind", [("llama", "bpe"), ("gemma3", "sp"), ("gpt2", "bpe")])
def test_response_logprobs_equal_independent(tiny_model_dir_factory, family, kind):
    import tuneshift

    loaded = tuneshift.load_model(
        str(tiny_model_dir_factory(family=family, tokenizer_kind=kind)), dtype="float64", progress=False
    )
    rng = np.random.default_rng(0)
    v = loaded.model.config.vocab_size
    seqs = [(rng.integers(3, v, n).tolist(), rng.integers(3, v, m).tolist()) for n, m in ((5, 3), (2, 6), (9, 1))]
    batched = response_logprobs(loaded.model, seqs, pad_token_id=0, batch_size=3)
    single = response_logprobs(loaded.model, seqs, pad_token_id=0, batch_size=1)
    for (p, r), b, s in zip(seqs, batched, single):
        ref = _independent_logprob(loaded.model, p, r)
        assert b.shape == (len(r),) and np.all(ref < 0)
        np.testing.assert_allclose(s, ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(b, ref, rtol=0, atol=1e-10)  # right padding changes nothing


def test_filler_is_one_token(tiny_llama):
    fid = filler_token_id(tiny_llama.tokenizer)
    assert tiny_llama.tokenizer.decode([fid]).strip() == "the"


def test_share_and_spearman_hand_worked():
    share, lo, hi, reason = share_ci(7, 10)
    # Wilson interval for 7/10 at 95%: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    z = 1.959963984540054
    c, h = (0.7 + z * z / 20) / (1 + z * z / 10), z * math.sqrt(0.21 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (
        reason is None
        and share == 0.7
        and lo == pytest.approx(c - h, abs=1e-9)
        and hi == pytest.approx(c + h, abs=1e-9)
    )
    assert share_ci(3, 4)[1:] == (
        pytest.approx(float("nan"), nan_ok=True),
        pytest.approx(float("nan"), nan_ok=True),
        "too few (4)",
    )
    x = np.arange(12.0)
    rho, lo, hi, p, reason = spearman_ci(x, x**3)
    assert rho == pytest.approx(1.0) and reason is None and lo == pytest.approx(1.0) and p < 1e-6
    rho, lo, hi, p, reason = spearman_ci(x, -x + np.sin(x))
    assert rho < -0.9 and lo <= rho <= hi and reason is None
    assert spearman_ci(x[:5], x[:5])[4] == "too few (5)" and math.isnan(spearman_ci(x[:5], x[:5])[1])
    assert spearman_ci(x, np.ones(12))[4] == "no variance"


@pytest.fixture(scope="module")
def gold_runs(tmp_path_factory, tiny_llama_dir, tiny_llama_other_dir, tiny_prompts_file):
    from tuneshift.cli import main

    d = tmp_path_factory.mktemp("abl")
    for name, model in (("base", tiny_llama_dir), ("tuned", tiny_llama_other_dir)):
        try:
            main(
                [
                    "attribute",
                    "--model",
                    str(model),
                    "--prompts",
                    str(tiny_prompts_file),
                    "--out",
                    str(d / name),
                    "--responses",
                    "gold",
                    "--threads",
                    "1",
                ]
            )
        except SystemExit as e:
            assert e.code in (0, None, 3)
    return d


def test_ablate_run_values_and_resume(gold_runs, tiny_llama_dir, cli):
    import tuneshift
    from tuneshift.methods.ablation.result import load_ablation
    from tuneshift.storage.attribution import load_run

    r = cli("ablate", gold_runs / "base", "--threads", "1")
    assert r.code == 0, r.err
    res = load_ablation(gold_runs / "base" / "ablation")
    t = res.table
    assert res.manifest["status"] == "complete"
    # every record has an instruction: 3 variants each, but "summary" is all instruction (a raw prompt,
    # no BOS): its delete would leave nothing to condition on, so that row is left out; 3 records have a context
    assert (t.span == "instruction").sum() == 6 * 3 - 1 and (t.span == "context").sum() == 3 * 3
    assert t[(t.record_id == "summary") & (t.span == "instruction")].variant.tolist() == ["mask", "swap"]
    assert set(t.variant) == {"delete", "mask", "swap"}
    # the unablated and the deleted log-probabilities, recomputed independently from the run's tokens
    run = load_run(gold_runs / "base")
    loaded = tuneshift.load_model(str(tiny_llama_dir), progress=False)
    from tuneshift.data.encoding import encode_prompt
    from tuneshift.data.prompts import read_prompts

    recs = {x.id: x for x in read_prompts(run.manifest["info"]["dataset_path"]).records}
    a = next(x for x in run.attributions if x.record_id == "rewrite")
    enc = encode_prompt(loaded.tokenizer, recs["rewrite"], "auto")
    resp = [int(x) for x in a.response_token_ids]
    full = _independent_logprob(loaded.model, enc.input_ids, resp).sum()
    kept = [i for i, role in zip(enc.input_ids, enc.roles) if role != "instruction"]
    deleted = _independent_logprob(loaded.model, kept, resp).sum()
    row = t[(t.record_id == "rewrite") & (t.span == "instruction") & (t.variant == "delete")].iloc[0]
    assert row.logp_full == pytest.approx(full, abs=1e-4) and row.logp_ablated == pytest.approx(deleted, abs=1e-4)
    assert row.effect == pytest.approx(full - deleted, abs=1e-4)
    assert row.effect_per_token == pytest.approx(row.effect / len(resp))
    sw = t[(t.variant == "swap") & (t.span == "instruction")]
    assert sw.donor_id.notna().all() and (sw.donor_id != sw.record_id).all()
    assert t[t.variant != "swap"].donor_id.isna().all()
    again = cli("ablate", gold_runs / "base", "--threads", "1")
    assert again.code == 0 and "already ablated" in again.err


def test_ablate_checks_before_load(gold_runs, tmp_path, cli, monkeypatch):
    import tuneshift.models.loading as loading
    from tuneshift.errors import TuneshiftError

    def boom(*a, **k):
        raise TuneshiftError("LOAD-REACHED")

    monkeypatch.setattr(loading, "load_model", boom)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "prompt": "Say hi.", "instruction": ["Say hi."]}) + "\n")
    assert_one_line_error(cli("ablate", gold_runs / "base", "--prompts", other), "not the prompt file")
    assert_one_line_error(cli("ablate", gold_runs / "base", "--variants", "erase"), "variants")
    assert_one_line_error(cli("ablate", gold_runs / "base", "--spans", "title"), "spans")
    tpl = tmp_path / "t.jinja"
    tpl.write_text("{{ messages[0]['content'] }}")
    assert_one_line_error(cli("ablate", gold_runs / "base", "--chat-template", tpl), "not a file")
    assert_one_line_error(cli("ablate", tmp_path / "nowhere"), "does not exist")
    abl = gold_runs / "base" / "ablation_other"
    r = cli("ablate", gold_runs / "base", "--out", abl, "--variants", "delete", "--threads", "1")
    assert_one_line_error(r, "LOAD-REACHED")  # good input gets past every check to the load (the earlier ones did not)


def test_compare_ablation(gold_runs, cli):
    for side in ("base", "tuned"):
        r = cli("ablate", gold_runs / side, "--threads", "1")
        assert r.code == 0, r.err
    r = cli("compare-ablation", gold_runs / "base" / "ablation", gold_runs / "tuned" / "ablation", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    prim = [c for c in d["contrasts"] if c["role"] == "primary"]
    assert len(prim) == 1 and (prim[0]["span"], prim[0]["variant"]) == ("instruction", "swap")
    n = prim[0]["n"]
    assert 1 <= n <= 6 and prim[0]["reason"] == f"too few pairs ({n})" and prim[0]["ci_low"] is None
    assert {s["side"] for s in d["swap_shares"]} == {"base", "tuned"}
    # with the minimum lowered the same rows get intervals, and the mean difference is tuned - base
    r2 = cli(
        "compare-ablation", gold_runs / "base" / "ablation", gold_runs / "tuned" / "ablation", "--json", "--min-n", "2"
    )
    p2 = [c for c in json.loads(r2.out)["contrasts"] if c["role"] == "primary"][0]
    assert p2["ci_low"] is not None and p2["diff"] == pytest.approx(p2["tuned_mean"] - p2["base_mean"], abs=1e-9)
    txt = cli("compare-ablation", gold_runs / "base" / "ablation", gold_runs / "tuned" / "ablation")
    assert "too few pairs" in txt.out and "Faithfulness" in txt.out
    same = cli("compare-ablation", gold_runs / "base" / "ablation", gold_runs / "base" / "ablation")
    assert_one_line_error(same, "both")


def test_ablation_in_the_report(gold_runs, cli, tmp_path):
    from tuneshift.reports.html import write_report

    for side in ("base", "tuned"):
        assert cli("ablate", gold_runs / side, "--threads", "1").code == 0
    r = cli(
        "compare-ablation", gold_runs / "base" / "ablation", gold_runs / "tuned" / "ablation", "--out", tmp_path / "cmp"
    )
    assert r.code == 0, r.err
    assert (tmp_path / "cmp" / "ablation_comparison.md").read_text().startswith("# Ablation")
    html = write_report([tmp_path / "cmp" / "ablation_comparison.json"], tmp_path / "r.html").read_text()
    sec = html.split('data-kind="ablation"')[1].split("</section>")[0]
    d = json.loads((tmp_path / "cmp" / "ablation_comparison.json").read_text())
    swaps = [x for x in d["records"] if x["variant"] == "swap"]
    assert sec.count("<tr>") >= len(swaps) > 0 and all(x["record_id"] in sec for x in swaps)
    assert "too few pairs" in sec and 'class="pos' not in sec and 'class="neg' not in sec


def test_attribute_with_ablation_and_compare_picks_it_up(
    tiny_llama_dir, tiny_llama_other_dir, tiny_prompts_file, cli, tmp_path
):
    for name, model in (("b", tiny_llama_dir), ("t", tiny_llama_other_dir)):
        r = cli(
            "attribute",
            "--model",
            model,
            "--prompts",
            tiny_prompts_file,
            "--out",
            tmp_path / name,
            "--responses",
            "gold",
            "--threads",
            "1",
            "--ablation",
        )
        assert r.code in (0, 3) and "ablation: 6 records" in r.err, r.err
        m = json.loads((tmp_path / name / "ablation" / "manifest.json").read_text())
        assert m["status"] == "complete" and m["identity"]["attribution"]["model"]["dtype"] == "float32"
    r = cli("compare", tmp_path / "b", tmp_path / "t", "--json", "--out", tmp_path / "cmp")
    d = json.loads(r.out)
    assert [c["role"] for c in d["ablation"]["contrasts"]].count("primary") == 1
    assert (tmp_path / "cmp" / "ablation_comparison.json").is_file()
    assert_one_line_error(
        cli(
            "attribute",
            "--model",
            tiny_llama_dir,
            "--prompts",
            tiny_prompts_file,
            "--out",
            tmp_path / "r",
            "--ablation",
            "--ray",
            "local",
        ),
        "--ablation",
    )


def test_interrupted_ablation_resumes_to_the_same_rows(gold_runs, tiny_llama, tmp_path, monkeypatch):
    import tuneshift.methods.ablation.core as core
    from tuneshift.methods.ablation.result import load_ablation
    from tuneshift.pipelines.ablate_run import AblationOptions, plan_ablation, run_ablation

    opts = AblationOptions(batch_size=2)
    full = run_ablation(
        tiny_llama, plan_ablation(gold_runs / "base", options=opts, out=tmp_path / "full"), progress=False
    )
    real, calls = core.response_logprobs, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(core, "response_logprobs", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_ablation(tiny_llama, plan_ablation(gold_runs / "base", options=opts, out=tmp_path / "cut"), progress=False)
    part = load_ablation(tmp_path / "cut")
    assert part.manifest["status"] == "partial" and part.table.record_id.nunique() == 2  # the first batch is kept
    monkeypatch.setattr(core, "response_logprobs", real)
    plan = plan_ablation(gold_runs / "base", options=opts, out=tmp_path / "cut")
    assert len(plan.todo) == 4
    run_ablation(tiny_llama, plan, progress=False)
    a, b = load_ablation(tmp_path / "full").table, load_ablation(tmp_path / "cut").table
    keys = ["record_id", "span", "variant"]
    pd_a, pd_b = a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
    assert full.n_rows == len(pd_b) and (
        pd_a.drop(columns=["logp_full", "logp_ablated", "effect", "effect_per_token"]).equals(
            pd_b.drop(columns=["logp_full", "logp_ablated", "effect", "effect_per_token"])
        )
    )
    np.testing.assert_allclose(pd_a.effect, pd_b.effect, atol=1e-5)
    with pytest.raises(Exception, match="other settings"):
        plan_ablation(gold_runs / "base", options=AblationOptions(seed=1), out=tmp_path / "cut")
