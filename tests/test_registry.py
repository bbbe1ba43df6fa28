"""The generic registry (tuneshift.registry) and the plugins of its entry-point groups.

Entry points are faked by replacing ``importlib.metadata.entry_points`` (what the registry calls);
the plugin modules are real files on a temporary ``sys.path``, so ``EntryPoint.load`` imports them
as it would an installed package's.
"""

from __future__ import annotations

import importlib.metadata
import textwrap
import uuid

import pytest

from helpers_tiny import assert_one_line_error
from tuneshift.errors import PluginError, TuneshiftError, UnsupportedArchitectureError
from tuneshift.registry import ENTRY_POINT_GROUPS, Registry

# ------------------------------------------------------------------ the generic registry


def test_register_call_and_decorator_forms_get_and_names():
    reg = Registry("widget")
    obj = object()
    assert reg.register("b", obj) is obj

    @reg.register("a")
    def a():
        return 1

    assert reg.get("a") is a and reg["b"] is obj and "a" in reg and "c" not in reg
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and len(reg) == 2
    assert reg.find("c") is None and reg.items() == [("a", a), ("b", obj)]
    with pytest.raises(TuneshiftError, match=r"^unknown widget 'c'; registered: a, b$"):
        reg.get("c")
    with pytest.raises(TuneshiftError, match="unknown widget"):
        reg.get(["unhashable"])
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", obj)
    assert reg.unregister("b") is obj and reg.names() == ["a"] and reg.unregister("b") is None


def test_duplicates_default_rule_and_registration_order():
    reg = Registry("widget", sort=False)

    def f():
        pass

    reg.register("z", f)
    reg.register("y", f)
    reg.register("z", f)  # the same definition again (a module re-import): kept, no error
    assert reg.names() == ["z", "y"]  # registration order

    def g():
        pass

    with pytest.raises(ValueError, match=r"widget 'z' is already registered \(.*f\)"):
        reg.register("z", g)
    assert reg.get("z") is f
    reg.register("obj", 1.5)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("obj", 2.5)  # two values (no qualified name) are never the same definition
    lax = Registry("variant", conflict=lambda name, old, new: None)
    lax.register("v", f)
    lax.register("v", g)  # a later registration replaces the earlier one
    assert lax.get("v") is g


def test_discover_runs_once_before_the_first_lookup():
    calls = []
    reg = Registry("widget")
    reg._discover = lambda: (calls.append(1), reg.register("built_in", 1), reg.names())  # a lookup while discovering
    assert reg.names(plugins=False) == [] and not calls  # no lookup yet: nothing discovered
    assert reg.names() == ["built_in"] and reg.get("built_in") == 1 and calls == [1]


# ------------------------------------------------------------------ fake entry points


@pytest.fixture
def plugins(monkeypatch, tmp_path):
    """``add(group, name, value, source=None)`` installs a fake entry point (``source``: the text of
    the module it names, written under a unique name and put on ``sys.path``; ``{mod}`` in
    ``value`` is that name). The four registries start unloaded (their built-ins kept) and are
    restored after the test."""
    from tuneshift.methods.ablation.core import ABLATIONS
    from tuneshift.methods.attribution.methods import METHODS
    from tuneshift.methods.attribution.targets import TARGETS
    from tuneshift.models.anatomy import ANATOMIES

    eps: dict[str, list] = {}
    for reg in (METHODS, TARGETS, ANATOMIES, ABLATIONS):
        reg.names()  # built-ins discovered with the real entry points (none installed here)
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
        monkeypatch.setattr(reg, "_loaded", None)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None, **kw: list(eps.get(group, [])))
    monkeypatch.syspath_prepend(str(tmp_path))

    def add(group: str, name: str, value: str, source: str | None = None) -> str:
        mod = f"tsplugin_{uuid.uuid4().hex[:10]}"
        if source is not None:
            (tmp_path / f"{mod}.py").write_text(textwrap.dedent(source))
        eps.setdefault(group, []).append(importlib.metadata.EntryPoint(name, value.format(mod=mod), group))
        return mod

    return add


def test_the_four_groups_are_declared():
    from tuneshift.methods.ablation.core import ABLATIONS
    from tuneshift.methods.attribution.methods import METHODS
    from tuneshift.methods.attribution.targets import TARGETS
    from tuneshift.models.anatomy import ANATOMIES

    groups = [r.group for r in (METHODS, TARGETS, ANATOMIES, ABLATIONS)]
    assert groups == ["tuneshift.methods", "tuneshift.targets", "tuneshift.anatomies", "tuneshift.ablations"]
    assert set(groups) == set(ENTRY_POINT_GROUPS)


METHOD_SOURCE = """
    from tuneshift.methods.attribution.methods import AttributionMethod
    from tuneshift.methods.attribution.methods.gradient_x_input import GradientXInput

    class Doubled(AttributionMethod):
        \"\"\"Gradient x input times two (a plugin).\"\"\"

        def attribute(self, model, pairs, target, pad_token_id=0, on_token=None):
            return [2 * m for m in GradientXInput().attribute(model, pairs, target, pad_token_id, on_token)]
"""


def test_a_plugin_method_is_found_by_name(plugins):
    from tuneshift.methods.attribution.methods import get_method, make_method, method_names

    plugins("tuneshift.methods", "plugin_doubled", "{mod}:Doubled", METHOD_SOURCE)
    cls = get_method("plugin_doubled")
    assert cls.__name__ == "Doubled" and cls.name == "plugin_doubled"  # registered under the entry point's name
    assert "plugin_doubled" in method_names() and "gradient_x_input" in method_names()
    assert make_method("plugin_doubled").options_dict() == {}
    # registering the same class again is a no-op; another class under its name is refused, as for a built-in
    from tuneshift.methods.attribution.methods import AttributionMethod, register_method

    assert register_method("plugin_doubled")(cls) is cls
    with pytest.raises(ValueError, match="already registered"):
        register_method("plugin_doubled")(type("Other", (AttributionMethod,), {}))


def test_a_plugin_module_registers_its_own_entries(plugins):
    from tuneshift.methods.ablation.core import ablate_tokens, ablation_names, get_ablation
    from tuneshift.methods.attribution.targets import get_target, target_names

    plugins(
        "tuneshift.ablations",
        "reverse",
        "{mod}",
        """
        from tuneshift.methods.ablation.core import register_ablation

        @register_ablation("reverse", "the span's tokens in reverse order (length kept)")
        def reverse(ids, roles, span, filler_id=None, donor_ids=None):
            idx = [i for i, r in enumerate(roles) if r == span]
            out = list(ids)
            for i, j in zip(idx, reversed(idx)):
                out[i] = ids[j]
            return out
    """,
    )
    plugins(
        "tuneshift.targets",
        "neg_logit",
        "{mod}",
        """
        from tuneshift.methods.attribution.targets import register_target

        @register_target("neg_logit", "logit", "minus the logit (a plugin)")
        def neg_logit(logits, token_ids):
            return -logits.gather(-1, token_ids[..., None]).squeeze(-1)
    """,
    )
    assert ablation_names(plugins=False) == ["delete", "mask", "swap"]  # --help text: nothing loaded
    assert ablation_names() == ["delete", "mask", "swap", "reverse"]  # registration order
    assert get_ablation("reverse").needs_donor is False
    assert ablate_tokens(
        [1, 2, 3, 4], ["template", "instruction", "instruction", "instruction"], "instruction", "reverse"
    ) == [1, 4, 3, 2]
    assert "neg_logit" in target_names() and get_target("neg_logit").units == "logit"
    with pytest.raises(TuneshiftError, match=r"unknown ablation 'nope'; registered: delete, mask, swap, reverse"):
        get_ablation("nope")


ANATOMY_SOURCE = """
    from tuneshift.models.anatomy.llama import LlamaAnatomy

    class PluginLlama(LlamaAnatomy):
        \"\"\"A llama renamed (a plugin).\"\"\"

        family = "plugin_llama"
"""


def test_a_plugin_anatomy_is_found_by_model_type(plugins, tiny_llama_dir):
    import torch

    import tuneshift
    from tuneshift.models.anatomy import SUPPORTED_FAMILIES, anatomy_class, get_anatomy, supported_families

    plugins("tuneshift.anatomies", "plugin_llama", "{mod}:PluginLlama", ANATOMY_SOURCE)
    assert "plugin_llama" not in SUPPORTED_FAMILIES  # the built-in families
    assert "plugin_llama" in supported_families() and anatomy_class("plugin_llama").__name__ == "PluginLlama"
    model = tuneshift.load_model(str(tiny_llama_dir), progress=False).model  # an own copy: its config is changed
    ref = get_anatomy(model)
    model.config.model_type = "plugin_llama"
    an = get_anatomy(model)
    assert type(an).__name__ == "PluginLlama" and an.n_layers == ref.n_layers
    assert all(torch.equal(a, b) for a, b in zip(an.query_key_weights(0), ref.query_key_weights(0)))
    model.config.model_type = "not_a_family"
    with pytest.raises(UnsupportedArchitectureError, match="model_type='not_a_family'.*plugin_llama"):
        get_anatomy(model)


@pytest.mark.parametrize(
    "value, source, needle",
    [
        ("tsplugin_no_such_module_abc:Thing", None, "ModuleNotFoundError"),
        ("{mod}:Missing", "X = 1\n", "AttributeError"),
        (
            "{mod}",
            "raise RuntimeError('the plugin is broken\\non two lines')\n",
            "RuntimeError: the plugin is broken on two lines",
        ),
        # a plugin that takes a built-in's name: the duplicate rule of register_anatomy, reported as the plugin's error
        (
            "{mod}",
            "from tuneshift.models.anatomy import register_anatomy, anatomy_class\n"
            "register_anatomy('llama', anatomy_class('gpt2', plugins=False))\n",
            "already registered",
        ),
        ("{mod}:NotAnAnatomy", "class NotAnAnatomy:\n    pass\n", "cannot be registered: register_anatomy"),
    ],
)
def test_a_broken_anatomy_plugin_is_one_clear_line(plugins, value, source, needle):
    from tuneshift.models.anatomy import anatomy_class, get_anatomy, supported_families

    plugins("tuneshift.anatomies", "broken", value, source)
    for _ in range(2):  # every lookup says so, not only the first
        with pytest.raises(PluginError) as e:
            supported_families()
        msg = str(e.value)
        assert msg.startswith("plugin 'broken' (") and "tuneshift.anatomies" in msg and needle in msg, msg
        assert "\n" not in msg
    with pytest.raises(PluginError):
        get_anatomy(object())
    assert anatomy_class("llama", plugins=False).__name__ == "LlamaAnatomy"  # the built-ins are untouched


def test_broken_plugins_leave_the_built_ins_working(plugins):
    """Looking up a built-in never loads the plugins: defaults computed at import time (the CLI's
    options) cannot fail on a broken plugin; asking for a name the built-ins lack, or for the list,
    gives the plugin's error."""
    from tuneshift.methods.ablation.core import ablation_names, get_ablation
    from tuneshift.methods.attribution.methods import DEFAULT_METHOD, get_method, method_names
    from tuneshift.methods.attribution.targets import get_target
    from tuneshift.models.anatomy import anatomy_class

    for group in ("tuneshift.methods", "tuneshift.targets", "tuneshift.anatomies", "tuneshift.ablations"):
        plugins(group, "broken", "tsplugin_missing_module_xyz:Thing")
    assert get_method(DEFAULT_METHOD).name == DEFAULT_METHOD and get_target("probability").units == "probability"
    assert anatomy_class("llama").family == "llama" and get_ablation("swap").needs_donor
    assert ablation_names(plugins=False) == ["delete", "mask", "swap"]
    for lookup in (method_names, lambda: get_method("plugin_method"), lambda: "plugin_method" in method_names()):
        with pytest.raises(
            PluginError, match="plugin 'broken' .* tuneshift.methods cannot be loaded: ModuleNotFoundError"
        ):
            lookup()
    assert get_method(DEFAULT_METHOD).name == DEFAULT_METHOD  # still


def test_a_broken_method_plugin_is_a_one_line_cli_error(plugins, cli, tiny_llama_dir, tiny_prompts_file, tmp_path):
    plugins("tuneshift.methods", "broken_method", "tsplugin_missing_module_xyz:Method")
    r = cli(
        "attribute",
        "--model",
        tiny_llama_dir,
        "--prompts",
        tiny_prompts_file,
        "--out",
        tmp_path / "run",
        "--responses",
        "gold",
        "--threads",
        "1",
        "--method",
        "broken_method",
    )
    assert_one_line_error(r, "plugin 'broken_method'", "tuneshift.methods", "ModuleNotFoundError")
    assert not (tmp_path / "run").exists()
