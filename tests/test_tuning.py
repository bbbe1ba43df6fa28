"""`tuneshift tune`: template and label masking, the response-only loss, a smoke training run,
bit-exact resume after an interruption, outputs, refusal of other settings, CLI errors."""

from __future__ import annotations

import json

import pytest
import torch

from helpers_tiny import assert_one_line_error
from tuneshift.errors import InputFileError, RunMismatchError, TuneshiftError
from tuneshift.models.loading import load_model
from tuneshift.tuning.corpus import load_corpus, user_text
from tuneshift.tuning.template import TUNESHIFT_TEMPLATE, encode_example, ensure_chat_template, prompt_text
from tuneshift.tuning.train import TuneOptions, make_batches, response_loss, tune

pytestmark = pytest.mark.numeric  # run again with two torch threads by `make test`

WORDS = ["cat", "dog", "sky", "sun"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.jsonl"
    with open(p, "w") as f:
        for i in range(16):
            w = WORDS[i % 4]
            rec = {"instruction": f"Say the word {w}.", "response": f"{w} {w}"}
            if i % 2:
                rec["input"] = "Only one word."
            f.write(json.dumps(rec) + "\n")
    return p


def fresh(dir_):
    return load_model(str(dir_), progress=False)


def test_template_and_label_masking(tiny_llama_dir):
    tok = fresh(tiny_llama_dir).tokenizer
    assert ensure_chat_template(tok) == "registered" and tok.chat_template == TUNESHIFT_TEMPLATE
    assert ensure_chat_template(tok) == "kept"
    text = prompt_text(tok, "Name a colour.")
    assert text == f"{tok.bos_token}### Instruction:\nName a colour.\n\n### Response:\n"
    ids, labels, cut = encode_example(tok, "Name a colour.", "Blue", max_length=64)
    n_prompt = len(tok(text, add_special_tokens=False)["input_ids"])
    resp = tok("Blue", add_special_tokens=False)["input_ids"]
    assert labels[:n_prompt] == [-100] * n_prompt  # prompt tokens get no loss
    assert labels[n_prompt:] == resp + [tok.eos_token_id] == ids[n_prompt:]
    assert not cut and len(ids) == len(labels) == n_prompt + len(resp) + 1
    ids2, labels2, cut2 = encode_example(tok, "Name a colour.", "Blue " * 40, max_length=n_prompt + 3)
    assert cut2 and len(ids2) == n_prompt + 3 and labels2[-1] != tok.eos_token_id
    with pytest.raises(TuneshiftError, match="max_length"):
        encode_example(tok, "Name a colour.", "Blue", max_length=n_prompt)
    assert user_text("Fix this.", "teh cat") == "Fix this.\n\nteh cat" and user_text("Hi", None) == "Hi"


@pytest.mark.parametrize(
    "family,overrides", [("llama", {}), ("gemma3", {"final_logit_softcapping": 3.0}), ("gpt2", {})]
)
def test_response_loss_equals_the_models_own_loss(tiny_model_dir_factory, family, overrides):
    m = fresh(tiny_model_dir_factory(family=family, tokenizer_kind="sp" if family == "gemma3" else "bpe", **overrides))
    model = m.model.double()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 200, (3, 11), generator=g)
    att = torch.ones_like(ids)
    att[1, 8:] = 0
    labels = ids.clone()
    labels[:, :5] = -100
    labels[1, 8:] = -100
    ours = response_loss(model, ids, att, labels)
    ref = model(input_ids=ids, attention_mask=att, labels=labels).loss
    assert ours.dtype == torch.float64 and abs(float(ours) - float(ref)) < 1e-6 * float(ref), (
        float(ours),
        float(ref),
    )  # HF: float32
    # and by hand: mean of -log p(next token) over labelled positions
    logits = model(input_ids=ids, attention_mask=att).logits
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
    mask = labels[:, 1:] != -100
    assert torch.allclose(ours, -(lp[mask]).mean(), rtol=1e-10)


def test_make_batches_covers_every_example_once_and_is_deterministic():
    lengths = [5, 9, 3, 7, 7, 1, 12, 4, 8, 2, 6]
    a = make_batches(lengths, 3, epoch=0, seed=0)
    assert sorted(i for b in a for i in b) == list(range(len(lengths))) and all(len(b) <= 3 for b in a)
    assert a == make_batches(lengths, 3, epoch=0, seed=0) and a != make_batches(lengths, 3, epoch=1, seed=0)


def test_smoke_training_loss_decreases_and_writes_outputs(tiny_gemma3_dir, corpus, tmp_path):
    out = tmp_path / "out"
    # one batch of all 16 examples, 3 epochs: each step's loss is on the same data
    opts = TuneOptions(epochs=3, batch_size=16, lr=1e-2, lora_rank=4, lora_dropout=0.0, checkpoint_every=1)
    s = tune(str(tiny_gemma3_dir), corpus, out, opts, loaded=fresh(tiny_gemma3_dir))
    losses = [r["loss"] for r in s.log]
    assert s.steps_done == s.total_steps == 3 and len(losses) == 3
    assert losses[0] > losses[1] > losses[2], losses
    names = {p.name for p in out.iterdir()}
    assert names == {
        "adapter_model.safetensors",
        "adapter_config.json",
        "chat_template.jinja",
        "tuneshift_adapter.json",
        "train_log.csv",
        "loss_curve.png",
        "manifest.json",
    }  # no checkpoints/, no model card
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "finished" and man["steps"] == 3 and man["n_examples"] == 16
    assert man["identity"]["options"]["lr"] == 1e-2 and len(man["identity"]["data_sha256"]) == 64
    assert man["final_loss"] == pytest.approx(sum(losses) / 3) and "peft" in man["versions"]
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "train_log.csv").read_text().splitlines()[0] == "step,epoch,loss,lr,tokens,seconds"
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8
    targets = {t.rsplit(".", 1)[-1] for t in cfg["target_modules"]}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # not lm_head
    # the tuned model loads with its chat template and differs from the base
    tuned = load_model(str(tiny_gemma3_dir), adapter=str(out), progress=False)
    assert tuned.tokenizer.chat_template == TUNESHIFT_TEMPLATE
    base = fresh(tiny_gemma3_dir)
    x = torch.tensor([[2, 10, 11, 12]])
    assert not torch.allclose(tuned.model(x).logits, base.model(x).logits)
    # finished: a second call does nothing; other settings are refused
    again = tune(str(tiny_gemma3_dir), corpus, out, opts, loaded=base)
    assert again.steps_done == 0 and again.final_loss == pytest.approx(s.final_loss)
    with pytest.raises(RunMismatchError, match="lr"):
        tune(
            str(tiny_gemma3_dir),
            corpus,
            out,
            TuneOptions(epochs=3, batch_size=16, lr=1e-3, lora_rank=4, lora_dropout=0.0),
            loaded=base,
        )


def test_resume_after_interruption_is_exact(tiny_llama_dir, corpus, tmp_path):
    from safetensors.torch import load_file

    opts = TuneOptions(batch_size=4, max_steps=4, lr=1e-2, lora_rank=4, lora_dropout=0.1, checkpoint_every=2)
    full = tune(str(tiny_llama_dir), corpus, tmp_path / "a", opts, loaded=fresh(tiny_llama_dir))

    def stop_after_3(row):
        if row["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune(str(tiny_llama_dir), corpus, tmp_path / "b", opts, loaded=fresh(tiny_llama_dir), on_step=stop_after_3)
    assert (tmp_path / "b" / "checkpoints" / "step-000002" / "weights.safetensors").exists()
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["status"] == "running"
    resumed = tune(str(tiny_llama_dir), corpus, tmp_path / "b", opts, loaded=fresh(tiny_llama_dir))
    assert resumed.resumed_from == 2 and resumed.steps_done == 2
    secs = [r["seconds"] for r in resumed.log]
    assert secs == sorted(secs)  # cumulative over the resume
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in full.log]
    wa = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_full_fine_tuning(tiny_llama_dir, corpus, tmp_path):
    s = tune(
        str(tiny_llama_dir),
        corpus,
        tmp_path / "f",
        TuneOptions(batch_size=8, max_steps=2, lr=1e-3, full=True),
        loaded=fresh(tiny_llama_dir),
    )
    assert s.steps_done == 2 and (tmp_path / "f" / "model" / "model.safetensors").exists()
    m = load_model(str(tmp_path / "f" / "model"), progress=False)
    assert m.tokenizer.chat_template == TUNESHIFT_TEMPLATE


def test_bad_inputs(tmp_path, corpus, tiny_llama_dir, cli):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\n')
    with pytest.raises(InputFileError, match="bad.jsonl:1"):
        load_corpus(bad)
    bad.write_text('{"instruction": "a\u2028b", "response": "c\u0085d"}\r\n', encoding="utf-8")  # raw separators
    assert [(e.instruction, e.response) for e in load_corpus(bad)] == [("a\u2028b", "c\u0085d")]
    bad.write_text("not json\n")
    with pytest.raises(InputFileError, match="not valid JSON"):
        load_corpus(bad)
    with pytest.raises(TuneshiftError, match="lr must"):
        TuneOptions(lr=0).validate()
    with pytest.raises(
        TuneshiftError, match=r"corpus.jsonl: record 1: a prompt has \d+ tokens, not less than max_length 8"
    ):
        tune(str(tiny_llama_dir), corpus, tmp_path / "short", TuneOptions(max_length=8), loaded=fresh(tiny_llama_dir))
    r = cli("tune", "--base", tiny_llama_dir, "--data", bad, "--out", tmp_path / "o")
    assert_one_line_error(r, "not valid JSON")
    r = cli("tune", "--base", tiny_llama_dir, "--data", corpus, "--out", tmp_path / "o", "--batch-size", "0")
    assert_one_line_error(r, "--batch-size must be >= 1")
    (tmp_path / "file").write_text("x")
    r = cli("tune", "--base", tiny_llama_dir, "--data", corpus, "--out", tmp_path / "file")
    assert_one_line_error(r, "is a file")


def test_cli_tune_runs_and_reports(tmp_path, corpus, tiny_llama_dir, cli):
    r = cli(
        "tune",
        "--base",
        tiny_llama_dir,
        "--data",
        corpus,
        "--out",
        tmp_path / "o",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--lora-rank",
        "2",
    )
    assert r.code == 0, r.err
    assert "2 steps (2 in all) on 16 examples" in r.err and "tune: 2/2 steps, loss " in r.err
    r = cli(
        "tune",
        "--base",
        tiny_llama_dir,
        "--data",
        corpus,
        "--out",
        tmp_path / "o",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--lora-rank",
        "2",
    )
    assert r.code == 0 and "already finished" in r.err


def test_a_tune_output_folder_is_a_model_spec(tiny_llama_dir, corpus, tmp_path):
    out = tmp_path / "tuned"
    tune(
        str(tiny_llama_dir),
        corpus,
        out,
        TuneOptions(batch_size=8, max_steps=1, lora_rank=2),
        loaded=fresh(tiny_llama_dir),
    )
    m = load_model(str(out), progress=False)  # = its recorded base + the adapter
    assert m.spec.adapter == str(out) and m.name == f"{tiny_llama_dir}+tuned"
    assert m.tokenizer.chat_template == TUNESHIFT_TEMPLATE
    ref = load_model(str(tiny_llama_dir), adapter=str(out), progress=False)
    x = torch.tensor([[1, 5, 9]])
    assert torch.equal(m.model(x).logits, ref.model(x).logits)
    with pytest.raises(Exception, match="adapter folder"):
        load_model(str(out), adapter=str(out), progress=False)


def test_an_alias_wins_over_a_same_named_adapter_folder(tmp_path, monkeypatch):
    from tuneshift.models.loading import _adapter_folder_base

    d = tmp_path / "gemma-3-270m-instruct"
    d.mkdir()
    (d / "adapter_config.json").write_text('{"base_model_name_or_path": "somewhere"}')
    monkeypatch.chdir(tmp_path)
    assert _adapter_folder_base("gemma-3-270m-instruct") is None
    assert _adapter_folder_base(str(d)) == "somewhere"
    (d / "adapter_config.json").write_text("{}")
    with pytest.raises(Exception, match="does not name its base"):
        _adapter_folder_base(str(d))
