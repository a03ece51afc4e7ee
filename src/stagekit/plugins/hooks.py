"""What a plugin implements, read from the plugin object itself: which hooks (and near-misses of their
names), how a failure it raised reads in one line, and whether its distribution accepts this stagekit."""

from __future__ import annotations

import difflib
import traceback

from stagekit import hookspecs

__all__ = ["CONTRACT_HOOKS", "HOOK_NAMES", "REGISTRATION_HOOKS", "core_version", "described", "hook_names",
           "hooks_implemented", "misspelt_hooks", "version_refusal"]

HOOK_NAMES = frozenset(n for n in dir(hookspecs) if n.startswith("stagekit_"))
REGISTRATION_HOOKS = ("stagekit_register_stages", "stagekit_register_merges", "stagekit_register_executors",
                      "stagekit_register_codecs", "stagekit_register_formats")
CONTRACT_HOOKS = ("stagekit_validate_artifact", "stagekit_check_compatible")


def hooks_implemented(plugin: object) -> dict[str, list[str]]:
    """The validator hooks and the lifecycle hooks a plugin implements (registration hooks are listed by what
    they registered)."""
    names = [n for n in hook_names(plugin) if n in HOOK_NAMES and n not in REGISTRATION_HOOKS]
    found = {"validators": [n for n in names if n in CONTRACT_HOOKS],
             "hooks": [n for n in names if n not in CONTRACT_HOOKS]}
    return {kind: hooks for kind, hooks in found.items() if hooks}


def described(exc: BaseException) -> str:
    """One line for a failure: ``SystemExit(3)`` says that it exited, not only its code."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def misspelt_hooks(plugin: object) -> str:
    """"it defines 'stagkit_register_stages' (did you mean 'stagekit_register_stages'?)", or ""."""
    hints = []
    for name in dir(plugin):
        if name.startswith("stagekit_") or name.startswith("__") or not callable(getattr(plugin, name, None)):
            continue
        close = difflib.get_close_matches(name, HOOK_NAMES, n=1, cutoff=0.85)
        if close:
            hints.append(f"it defines {name!r} (did you mean {close[0]!r}?)")
    return "; ".join(hints)


def hook_names(plugin: object) -> list[str]:
    return [n for n in dir(plugin) if n.startswith("stagekit_") and callable(getattr(plugin, n, None))]


def core_version() -> str:
    from stagekit._version import version

    return version()


def version_refusal(distribution: str | None) -> str | None:
    """Why a plugin's distribution cannot run with this stagekit, or None if it can."""
    from stagekit.plugins import discovery

    spec = discovery.required_stagekit(distribution)
    if spec is None:
        return None
    from packaging.specifiers import SpecifierSet

    ours = core_version()
    if SpecifierSet(spec).contains(ours, prereleases=True):
        return None
    return f"requires stagekit{spec}, but this is stagekit {ours}"
