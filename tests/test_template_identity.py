"""Issue 21 item 5: a template file's run identity does not depend on a final newline or line
endings, and ``tuneshift template MODEL`` prints the template the demo uses."""

import hashlib

import helpers_tiny as H
from tuneshift.data.encoding import model_chat_template, normalise_template
from tuneshift.methods.attribution.api import AttributionOptions


def _identity(path) -> str:
    return AttributionOptions(chat_template=str(path)).to_dict()["chat_template"]


def test_print_newline_and_crlf_do_not_change_the_identity(tmp_path):
    raw = H.CHATML_TEMPLATE  # as the tokenizer holds it (what the demo writes)
    variants = {
        "raw": raw,
        "print": raw + "\n",
        "editor": raw + "\n\n  \t\n",
        "crlf": raw.replace("\n", "\r\n") + "\r\n",
    }
    ids = {}
    for name, text in variants.items():
        f = tmp_path / f"{name}.jinja"
        f.write_bytes(text.encode())
        ids[name] = _identity(f)
    # an independent computation: sha256 of the text with LF line ends and nothing trailing
    want = "file:sha256:" + hashlib.sha256(raw.replace("\r\n", "\n").rstrip().encode()).hexdigest()
    assert ids == {name: want for name in variants}


def test_rendering_uses_the_normalised_text(tmp_path):
    f = tmp_path / "t.jinja"
    f.write_bytes(b"{{ messages[0]['content'] }}\r\nX\r\n\r\n  ")
    assert AttributionOptions(chat_template=str(f)).template_text == "{{ messages[0]['content'] }}\nX"
    assert normalise_template("a\rb\r\n\n") == "a\nb"


def test_a_changed_template_still_changes_the_identity(tmp_path):
    a, b = tmp_path / "a.jinja", tmp_path / "b.jinja"
    a.write_text(H.CHATML_TEMPLATE)
    b.write_text(H.CHATML_TEMPLATE + " ")  # trailing: same
    assert _identity(a) == _identity(b)
    b.write_text(H.CHATML_TEMPLATE.replace("assistant", "Assistant"))
    assert _identity(a) != _identity(b)


def test_template_command_prints_the_demo_form(cli, tiny_model_dir_factory, tmp_path):
    d = tiny_model_dir_factory(chat_template=H.CHATML_TEMPLATE + "\n\n")  # a template ending in newlines
    r = cli("template", d, "--threads", "1")
    assert r.code == 0, r.err
    assert r.out == H.CHATML_TEMPLATE + "\n"
    f = tmp_path / "form.jinja"
    f.write_text(r.out)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(d))
    demo_file = tmp_path / "prompt_template.jinja"  # what run_demo writes for the tuned model
    demo_file.write_text(model_chat_template(tok) + "\n")
    assert _identity(f) == _identity(demo_file)
    r = cli("template", d, "--out", tmp_path / "o.jinja")
    assert r.code == 0 and (tmp_path / "o.jinja").read_text() == H.CHATML_TEMPLATE + "\n" and r.out == ""


def test_template_command_without_a_template(cli, tiny_llama_dir):
    r = cli("template", tiny_llama_dir)
    assert r.code == 2 and "Traceback" not in r.err
    assert "has no chat template" in r.err and "--chat-template none" in r.err
    assert r.out == ""


def test_compare_refusal_explains_a_template_hash_change():
    from types import SimpleNamespace

    from tuneshift.stats.compare import _template_hint

    def run(ct):
        return SimpleNamespace(manifest={"identity": {"options": {"chat_template": ct}}})

    assert "normalising line endings" in _template_hint(run("file:sha256:aa"), run("file:sha256:bb"))
    assert _template_hint(run("file:sha256:aa"), run("file:sha256:aa")) == ""
    assert _template_hint(run("auto"), run("file:sha256:bb")) == ""
