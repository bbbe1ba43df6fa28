"""Issue 21 item 8: ``help(tuneshift)`` lists the public API, ``__all__`` is complete and
resolvable, ``import tuneshift`` stays light; ``tuneshift models`` fits 80 columns."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tuneshift

ROOT = Path(__file__).resolve().parents[1]

#: what a user of the library needs, at least (the issue names the first three).
PUBLIC = (
    "load_model",
    "attribute",
    "load_run",
    "LoadedModel",
    "Attribution",
    "AttributionOptions",
    "run_attribution",
    "compare_runs",
    "read_prompts",
    "run_heads",
    "compare_heads",
    "run_concepts",
    "compare_rotation",
    "annotate_run",
    "run_demo",
    "load_release",
    "paper_tables",
    "tune",
    "evaluate_following",
    "write_report",
    "TuneshiftError",
    "ModelPair",
)


def _py(code: str, **env) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=300)


def test_all_lists_the_public_api_and_the_docstring_names_it():
    for name in PUBLIC:
        assert name in tuneshift.__all__, name
        assert name in tuneshift.__doc__, name
    assert len(set(tuneshift.__all__)) == len(tuneshift.__all__)


@pytest.mark.slow  # starts a subprocess
def test_import_tuneshift_does_not_import_torch():
    r = _py(
        "import sys, tuneshift; tuneshift.__all__; tuneshift.__doc__; "
        "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'pandas') if m in sys.modules))"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.replace("'", '"')) == []


@pytest.mark.slow  # starts a subprocess
def test_every_name_in_all_resolves_and_help_shows_the_api():
    r = _py(
        "import pydoc, tuneshift\n"
        "missing = [n for n in tuneshift.__all__ if getattr(tuneshift, n, None) is None]\n"
        "print(missing)\n"
        "text = pydoc.render_doc(tuneshift, renderer=pydoc.plaintext)\n"
        "print('load_model(' in text, 'compare_runs' in text, 'attribute(' in text)"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "True True True"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tuneshift.nope  # noqa: B018


@pytest.mark.slow  # starts a subprocess
def test_models_compact_at_80_columns():
    e = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "tuneshift", "models"], capture_output=True, text=True, env=e, timeout=300
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.rstrip("\n").split("\n")
    from tuneshift.models.specs import PACKAGED_MODELS

    assert len(lines) == 1 + len(PACKAGED_MODELS)  # a header and one line per alias
    assert max(len(x) for x in lines) <= 80
    for alias, pm in PACKAGED_MODELS.items():
        assert any(x.startswith(alias) and pm.package in x for x in lines), alias
    assert "--long" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "tuneshift", "models", "--json"], capture_output=True, text=True, env=e, timeout=300
    )
    rows = json.loads(r.stdout)
    assert [x["alias"] for x in rows] == list(PACKAGED_MODELS)
    assert {"alias", "instruction_tuned", "installed", "description", "install", "package"} <= set(rows[0])
    r = subprocess.run(
        [sys.executable, "-m", "tuneshift", "models", "--long"], capture_output=True, text=True, env=e, timeout=300
    )
    assert r.returncode == 0 and "install with" in r.stdout
