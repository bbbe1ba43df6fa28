"""tuneshift: what instruction tuning changes inside a language model.

Implements the explanation methods of Wu et al., NAACL 2024, "From Language Modeling to
Instruction Following: Understanding the Behavior Shift in LLMs after Instruction Tuning"
(arXiv 2310.00492). Pipeline: models (loading, anatomy) -> data (prompts, spans) -> methods -> storage ->
stats -> reports/CLI. ``import tuneshift`` is light (no torch import); each name below is
imported from its module on first use.

Public API (``tuneshift.NAME``; the defining module in brackets):

Models
    load_model(spec, adapter=None, dtype="float32", device="cpu") -> LoadedModel  [models.loading]
    LoadedModel, ModelPair(base, tuned)                                  [models.loading, models.pair]
Data
    read_prompts(path, ratings=None, limit=None) -> PromptSet; PromptRecord, PromptSet  [data.prompts]
Method A: attribution (gradient x input)
    attribute(loaded, prompt, response=None, *, instruction=...) -> Attribution; attribute_batch [methods.attribution]
    AttributionOptions, ImportanceSettings (b, p, L), Attribution
    run_attribution(loaded, prompts, out_dir, options) -> resumable run on disk  [pipelines.attribute_run]
    load_run(path) -> Run                                                        [storage.attribution]
    compare_runs(base, tuned) -> Comparison; sensitivity; ScoreSettings         [stats.compare]
    run_demo(out_dir, DemoOptions()) -> DemoResult                               [pipelines.demo]
Method B: attention heads as word pairs
    run_heads(loaded, out_dir, HeadsOptions()) ; load_heads(path) ; compare_heads(base_dir, tuned_dir)
Method C: feed-forward concepts
    run_concepts(loaded, out_dir, ConceptsOptions()) ; load_concepts(path) ; annotate_run(dir, backend) ;
    compare_rotation(base_dir, tuned_dir)
The paper's released data
    load_release(released, dataset, ratings) ; import_paper(...) ; paper_tables(base, tuned)
Instruction tuning and following
    tune(base, data, out_dir, TuneOptions()) ; evaluate_following(loaded, items)
Reports and errors
    write_report(paths, out) -> one offline HTML page ; save_with_markdown(result, dir) (JSON + .md twin) ; TuneshiftError (every user error)

The command line (``tuneshift --help``) wraps the same functions; see README.md and docs/.
"""

from tuneshift._version import __version__

#: public name -> the module that defines it (imported lazily by ``__getattr__``).
_API = {
    "load_model": "tuneshift.models.loading",
    "LoadedModel": "tuneshift.models.loading",
    "ModelPair": "tuneshift.models.pair",
    "read_prompts": "tuneshift.data.prompts",
    "PromptRecord": "tuneshift.data.prompts",
    "PromptSet": "tuneshift.data.prompts",
    "attribute": "tuneshift.methods.attribution",
    "attribute_batch": "tuneshift.methods.attribution",
    "Attribution": "tuneshift.methods.attribution",
    "AttributionOptions": "tuneshift.methods.attribution",
    "ImportanceSettings": "tuneshift.methods.attribution",
    "run_attribution": "tuneshift.pipelines.attribute_run",
    "load_run": "tuneshift.storage.attribution",
    "Run": "tuneshift.storage.attribution",
    "compare_runs": "tuneshift.stats.compare",
    "sensitivity": "tuneshift.stats.compare",
    "ScoreSettings": "tuneshift.stats.compare",
    "run_demo": "tuneshift.pipelines.demo",
    "DemoOptions": "tuneshift.pipelines.demo",
    "run_heads": "tuneshift.pipelines.heads_run",
    "HeadsOptions": "tuneshift.pipelines.heads_run",
    "load_heads": "tuneshift.storage.heads",
    "compare_heads": "tuneshift.stats.heads_compare",
    "run_concepts": "tuneshift.pipelines.concepts_run",
    "ConceptsOptions": "tuneshift.pipelines.concepts_run",
    "load_concepts": "tuneshift.storage.concepts",
    "annotate_run": "tuneshift.pipelines.annotate_run",
    "compare_rotation": "tuneshift.stats.concepts_rotation",
    "load_release": "tuneshift.pipelines.import_paper",
    "import_paper": "tuneshift.pipelines.import_paper",
    "paper_tables": "tuneshift.stats.paper_tables",
    "tune": "tuneshift.tuning.train",
    "TuneOptions": "tuneshift.tuning.train",
    "evaluate_following": "tuneshift.tuning.following",
    "write_report": "tuneshift.reports.html",
    "save_with_markdown": "tuneshift.reports.markdown",
    "render_markdown": "tuneshift.reports.markdown",
    "TuneshiftError": "tuneshift.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name):  # lazy: `import tuneshift` stays fast (no torch import)
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'tuneshift' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
