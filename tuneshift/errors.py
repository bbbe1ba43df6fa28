"""User-facing errors.

Every error a user can cause (bad file, bad spec, bad option) is raised as a
:class:`TuneshiftError` subclass. The CLI catches these and prints one line, exit code 2,
never a traceback. Library users can catch them too.
"""

from __future__ import annotations


class TuneshiftError(Exception):
    """Base class of every error caused by user input; its message is one clear line."""


class InputFileError(TuneshiftError):
    """A prompt, vocabulary or run file is missing, unreadable or malformed."""


class ModelSpecError(TuneshiftError):
    """A model spec cannot be resolved (unknown alias, missing file, missing package)."""


class UnsupportedArchitectureError(TuneshiftError):
    """The model's architecture family has no anatomy adapter."""


class PluginError(TuneshiftError):
    """An installed plugin (an entry point of a ``tuneshift.*`` group, :mod:`tuneshift.registry`)
    cannot be loaded or registered; the message names the entry point and the cause."""


class AdapterMismatchError(TuneshiftError):
    """A PEFT/LoRA adapter was trained for another base model."""


class RunMismatchError(TuneshiftError):
    """An existing run directory was made with other parameters or another model."""


class ContextLengthError(TuneshiftError):
    """A prompt does not fit the model's context window."""


class PreformattedPromptError(TuneshiftError):
    """A prompt holds chat-template text (a special token such as ``<start_of_turn>`` or the BOS
    string, or the template's generation prompt), or its encoding has more than one BOS: the
    record is refused (skipped with this reason in an attribution run)."""


class OptionError(TuneshiftError):
    """Bad values of named options. The library names them by their Python parameter names
    (``max_new_tokens``); the CLI shows its own flag spelling (``--max-new-tokens``) instead.

    Args:
        problems: ``{option: "must be at least 1"}``, or one option name with ``message``.
    """

    def __init__(self, problems: dict[str, str] | str, message: str | None = None):
        self.problems = {problems: message or "is not valid"} if isinstance(problems, str) else dict(problems)
        super().__init__(self.render())

    def render(self, spell=lambda name: name) -> str:
        """The one-line message, each option name passed through ``spell`` (the CLI's flags)."""
        return "; ".join(f"{spell(k)}{'' if v.startswith(':') else ' '}{v}" for k, v in self.problems.items())
