"""The drivers: the top of the library, imported by nothing but the CLI.

Each module runs one method over a whole model or prompt set, resumably and with progress:
attribution (attribute_run, ray_run), the ablation (ablate_run), the paper's released
attributions (import_paper), heads (heads_run), concepts (concepts_run), the annotator
(annotate_run) and the demo (demo, demo_options, demo_tasks). They use the methods, store
through :mod:`tuneshift.storage`, compare through :mod:`tuneshift.stats` and render through
:mod:`tuneshift.reports`.
"""
