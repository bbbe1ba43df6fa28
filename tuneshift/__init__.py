"""tuneshift: what instruction tuning changes inside a language model.

Implements the explanation methods of Wu et al., NAACL 2024, "From Language Modeling to
Instruction Following: Understanding the Behavior Shift in LLMs after Instruction Tuning".
Pipeline: models (loading, anatomy) -> data (prompts, spans) -> methods -> stats -> reports/CLI.
"""

from tuneshift._version import __version__

__all__ = ["__version__", "load_model", "attribute", "load_run", "Attribution", "LoadedModel"]


def __getattr__(name):  # lazy: `import tuneshift` stays fast (no torch import)
    if name == "load_model" or name == "LoadedModel":
        from tuneshift.models import loading

        return getattr(loading, name)
    if name == "attribute" or name == "Attribution":
        from tuneshift.methods import attribution

        return getattr(attribution, name)
    if name == "load_run":
        from tuneshift.runs.store import load_run

        return load_run
    raise AttributeError(f"module 'tuneshift' has no attribute {name!r}")
