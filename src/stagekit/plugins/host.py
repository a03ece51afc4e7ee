"""Build a plugin host: find plugins through entry points, load them in isolation, collect registrations.

There is no global plugin manager. Each :class:`Host` owns its own ``pluggy.PluginManager``, so an
application can embed stagekit with its own entry-point group and its own plugins, and two hosts in one
process never see each other's plugins.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, Literal

import attrs
import pluggy

from stagekit import hookspecs
from stagekit.errors import PluginConfigError, PluginError, RegistrationError, RunInterrupted
from stagekit.plugins.discovery import normalize
from stagekit.plugins.hooks import (
    HOOK_NAMES,
    REGISTRATION_HOOKS,
    core_version,
    described,
    hook_names,
    hooks_implemented,
    misspelt_hooks,
    version_refusal,
)
from stagekit.plugins.registry import MergeClaims, Provenance, Registry

__all__ = ["Host", "HostSpec", "PluginRecord"]

Status = Literal["loaded", "failed", "blocked", "disabled"]

# executors that plugins we know of provide: named only in a hint, and only where that plugin is really missing
_KNOWN_EXECUTOR_PLUGINS = {"ray": "stagekit-ray"}
# the core's own plugins, by plugin name: they register through the same hooks as any installed plugin
BUILTIN_PLUGINS = {
    "stagekit.executors": "stagekit.run.executors.builtin",
    "stagekit.merges": "stagekit.merge.builtin",
    "stagekit.contracts": "stagekit.contracts.pandera_validator",
    "stagekit.codecs": "stagekit.store.builtin_codecs",
    "stagekit.formats": "stagekit.store.builtin_formats",
}


@attrs.define
class PluginRecord:
    """What happened to one plugin: where it came from, whether it loaded, what it registered."""

    name: str
    distribution: str | None = None
    version: str | None = None
    status: Status = "loaded"
    error: str | None = None
    value: str | None = None  # the entry point's "module:attr"
    stages: list[str] = attrs.field(factory=list)
    registered: dict[str, list[str]] = attrs.field(factory=dict)  # kind (stages, merges...) -> names
    shadowed: list[str] = attrs.field(factory=list)  # other locations of the same distribution
    note: str | None = None  # something to know that is not a failure (e.g. shadowed copies)

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.name, self.distribution, self.version)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "status": self.status, "error": self.error, "stages": list(self.stages),
            "registered": {kind: list(names) for kind, names in self.registered.items()},
            "entry_point": self.value, "shadowed": list(self.shadowed), "note": self.note,
        }


@attrs.frozen
class HostSpec:
    """A picklable recipe for an equivalent host: workers rebuild it from entry-point and module names."""

    group: str
    autoload: bool
    allow: tuple[str, ...]
    block: tuple[str, ...]
    modules: tuple[str, ...]  # plugins passed in code as importable modules
    builtins: bool

    def build(self) -> Host:
        import importlib

        plugins = [importlib.import_module(m) for m in self.modules]
        return Host(group=self.group, plugins=plugins, autoload=self.autoload, allow=list(self.allow),
                    block=list(self.block), strict=False, builtins=self.builtins, env={})


class _PluginManager(pluggy.PluginManager):
    """Treats every ``stagekit_*`` callable as a hook implementation, so a misspelt name is caught."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("stagekit_") and callable(getattr(plugin, name, None)):
            return {}
        return opts


def _flag(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").strip().lower() in {"1", "true", "yes", "on"}


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


class Host:
    """A plugin manager with its plugins loaded and their registrations collected.

    ``group`` is the entry-point group to search (``"stagekit"``); ``plugins`` are extra plugins passed in
    code (modules or objects, optionally as ``(name, plugin)``). ``autoload``, ``allow``, ``block`` and
    ``strict`` default to the environment (``STAGEKIT_DISABLE_PLUGIN_AUTOLOAD``, ``STAGEKIT_PLUGINS``,
    ``STAGEKIT_DISABLE``, ``STAGEKIT_STRICT_PLUGINS``); given block names add to the environment's.
    """

    def __init__(
        self,
        *,
        group: str = "stagekit",
        plugins: Iterable[object] = (),
        autoload: bool | None = None,
        allow: Sequence[str] | None = None,
        block: Sequence[str] = (),
        strict: bool | None = None,
        builtins: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.group = group
        self.autoload = (not _flag(env, "STAGEKIT_DISABLE_PLUGIN_AUTOLOAD")) if autoload is None else autoload
        self.allow = list(allow) if allow is not None else _names(env.get("STAGEKIT_PLUGINS"))
        self.block = [*_names(env.get("STAGEKIT_DISABLE")), *block]
        self.strict = _flag(env, "STAGEKIT_STRICT_PLUGINS") if strict is None else strict
        self.manager = _PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        self.conflicts: list[str] = []  # registrations two plugins claimed (see ``registry``)
        self._registry = Registry()
        self._merges = MergeClaims()
        self._code_plugins = list(plugins)
        self._builtins = builtins
        self._load()

    @classmethod
    def isolated(cls, *plugins: object, builtins: bool = True, strict: bool = True) -> Host:
        """A host with stagekit's built-ins and exactly ``plugins`` (modules, objects, or ``(name, plugin)``):
        no entry points, no environment controls. For apps that embed the core, and for tests."""
        return cls(plugins=plugins, autoload=False, env={}, strict=strict, builtins=builtins)

    @classmethod
    def installed(cls) -> Host:
        """The host of the installed plugins (entry-point group ``stagekit``, honouring the environment's
        controls), built on first use and shared by the process, as pytest autoloads its plugins. It is what
        a ``Pipeline`` without a host, a pipeline file loaded from Python and ``stagekit run`` all run with."""
        return _installed_host()

    def failed_plugins_hint(self) -> str:
        """For an unknown stage or executor: the plugins that failed to load, whose registrations are missing."""
        failed = [r for r in self.records if r.status == "failed"]
        if not failed:
            return ""
        return "; these plugins failed to load, so what they register is missing: " + "; ".join(
            f"{r.provenance}: {r.error}" for r in failed)

    def missing_plugin_hint(self, executor: str) -> str:
        """Where an unknown executor comes from, named only where that plugin is really missing; installed
        but not loaded, its status and why."""
        distribution = _KNOWN_EXECUTOR_PLUGINS.get(executor)
        if distribution is None:
            return ""
        found = [r for r in self.records if normalize(r.distribution or "") == distribution]
        if not found:
            return f" (the {executor!r} executor comes with: pip install {distribution})"
        rec = found[0]
        why = f": {rec.error}" if rec.error else ""
        return f" ({distribution} {rec.version} is installed, but its plugin {rec.name!r} is {rec.status}{why})"

    def spec(self) -> HostSpec:
        """How to rebuild this host in a worker process (plugins passed in code as objects are skipped)."""
        modules = tuple(p.__name__ for p in self._code_plugins if isinstance(p, ModuleType))
        return HostSpec(self.group, self.autoload, tuple(self.allow), tuple(self.block), modules, self._builtins)

    @property
    def registry(self) -> Registry:
        """Everything the plugins registered. Two plugins claiming one stage or executor name is an error
        here (and not when listing plugins, so that ``stagekit plugins`` can show who clashes)."""
        if self.conflicts:
            raise RegistrationError("; ".join(self.conflicts))
        return self._registry

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def record(self, name: str) -> PluginRecord:
        for r in self.records:
            if r.name == name:
                return r
        raise KeyError(name)

    # --- loading --------------------------------------------------------------------------------------

    def _load(self) -> None:
        from stagekit.plugins import discovery

        candidates: list[tuple[PluginRecord, Callable[[], object]]] = []
        if self._builtins:
            for name, module in BUILTIN_PLUGINS.items():
                candidates.append((PluginRecord(name, "stagekit", core_version(), value=module),
                                   _importer(module)))
        for plugin in self._code_plugins:
            name, obj = plugin if isinstance(plugin, tuple) else (_plugin_name(plugin), plugin)
            candidates.append((PluginRecord(name, value="<in code>"), _given(obj)))
        found = discovery.find_entry_points(self.group)
        self._check_control_names(found, [r.name for r, _ in candidates])
        for ep in found:
            rec = PluginRecord(ep.name, ep.distribution, ep.version, value=ep.value, shadowed=list(ep.shadowed))
            if ep.shadowed:
                rec.note = f"also installed at {', '.join(ep.shadowed)} (shadowed by {ep.location})"
            candidates.append((rec, ep.load))
        for rec, load in candidates:
            self.records.append(rec)
            self._admit(rec, load, from_entry_point=rec.value not in ("<in code>", *BUILTIN_PLUGINS.values()))
        self._collect_registrations()

    def _check_control_names(self, found: Sequence[Any], code_names: list[str]) -> None:
        known = {*code_names, *(e.name for e in found), *(normalize(e.distribution or "") for e in found)}
        known.discard("")
        for label, names in (("STAGEKIT_PLUGINS / allow list", self.allow),
                             ("STAGEKIT_DISABLE / --disable", self.block)):
            unknown = [n for n in names if n not in known and normalize(n) not in known]
            if unknown:
                close = {n: difflib.get_close_matches(n, sorted(known), n=2) for n in unknown}
                hints = "; ".join(f"{n!r}" + (f" (did you mean {', '.join(c)}?)" if c else "")
                                  for n, c in close.items())
                raise PluginConfigError(
                    f"{label} names unknown plugin(s) {hints}; installed plugins in group "
                    f"{self.group!r}: {', '.join(sorted(known)) or '(none)'}"
                )

    def _matches(self, rec: PluginRecord, names: list[str]) -> bool:
        keys = {rec.name, normalize(rec.name)}
        if rec.distribution:
            keys.add(normalize(rec.distribution))
        return any(n in keys or normalize(n) in keys for n in names)

    def _admit(self, rec: PluginRecord, load: Callable[[], object], *, from_entry_point: bool) -> None:
        if self._matches(rec, self.block):
            rec.status = "blocked"
            return
        if from_entry_point and (not self.autoload or (self.allow and not self._matches(rec, self.allow))):
            rec.status = "disabled"
            return
        if from_entry_point and (refusal := version_refusal(rec.distribution)):
            self._fail(rec, refusal, None)
            return
        taken = next((r for r in self.records if r is not rec and r.name == rec.name and r.status == "loaded"), None)
        if taken is not None:
            self._fail(rec, f"plugin name {rec.name!r} is already taken by {taken.provenance}; block one of them "
                            "by its distribution name (--disable DIST)", None)
            return
        try:
            plugin = load()
        except KeyboardInterrupt:  # Ctrl-C stays an interrupt, but says which plugin it interrupted
            raise RunInterrupted(f"interrupted while importing {rec.provenance} (entry point {rec.value}); if "
                                 f"it hangs at import, block it: stagekit --disable {rec.name}") from None
        except BaseException as exc:  # SystemExit at import too: a plugin never ends the process silently
            self._fail(rec, f"import failed: {described(exc)}", exc)
            return
        try:
            self.manager.register(plugin, name=rec.name)
        except Exception as exc:  # pluggy's signature validation
            self._fail(rec, f"invalid hook implementation: {str(exc).splitlines()[0]}", exc)
            return
        unknown = sorted(n for n in hook_names(plugin) if n not in HOOK_NAMES)
        if unknown:
            self.manager.unregister(name=rec.name)
            hints = [f"{n!r}" + (f" (did you mean {difflib.get_close_matches(n, HOOK_NAMES, n=1)[0]!r}?)"
                                 if difflib.get_close_matches(n, HOOK_NAMES, n=1) else "") for n in unknown]
            self._fail(rec, f"unknown hook(s) {', '.join(hints)}", None)

    def _fail(self, rec: PluginRecord, message: str, exc: BaseException | None) -> None:
        registered = self.manager.get_plugin(rec.name)
        rec.status, rec.error = "failed", message
        if registered is not None and not any(r is not rec and r.name == rec.name and r.status == "loaded"
                                              for r in self.records):
            self.manager.unregister(name=rec.name)
        if self.strict:
            where = f" (distribution {rec.distribution} {rec.version})" if rec.distribution else ""
            raise PluginError(f"plugin {rec.name!r}{where}: {message}", plugin=rec.name,
                              distribution=rec.distribution) from exc

    def _collect_registrations(self) -> None:
        """Call each loaded plugin's registration hooks on its own, so one failure stays with its plugin."""
        for rec in self.records:
            if rec.status != "loaded":
                continue
            plugin = self.manager.get_plugin(rec.name)
            staged = Registry()
            origin = rec.provenance
            register = {
                "stagekit_register_stages": lambda s, o=origin, r=staged: r.add_stage(s, o),
                "stagekit_register_merges": lambda t, m, o=origin, r=staged: r.add_merge(t, m, o),
                "stagekit_register_executors": lambda n, f, o=origin, r=staged: r.add_executor(n, f, o),
                "stagekit_register_codecs": lambda t, c, o=origin, r=staged: r.add_codec(t, c, o),
                "stagekit_register_formats": lambda n, f, o=origin, r=staged: r.add_format(n, f, o),
            }
            try:
                for hook_name in REGISTRATION_HOOKS:
                    impl = getattr(plugin, hook_name, None)
                    if impl is not None:
                        impl(register=register[hook_name])
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._fail(rec, f"registration failed: {described(exc)}", exc)
                continue
            try:
                self._merges.extend(staged.merges)  # two merges for one type: the later plugin fails to load
            except RegistrationError as exc:
                self._fail(rec, str(exc), exc)
                continue
            try:
                self._registry.extend(staged)
            except RegistrationError as exc:  # two plugins claim one name: both are named
                self.conflicts.append(str(exc))
                rec.error = str(exc)
                if self.strict:
                    raise
            rec.stages = list(staged.stages)
            rec.registered = {**staged.summary(), **hooks_implemented(plugin)}
            if not rec.registered and (near := misspelt_hooks(plugin)):
                rec.note = (f"registered nothing and implements no hook; {near}")


def _given(plugin: object) -> Callable[[], object]:
    return lambda: plugin


def _importer(module: str) -> Callable[[], object]:
    def load() -> object:
        import importlib

        return importlib.import_module(module)

    return load


def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return str(name)


@functools.cache
def _installed_host() -> Host:
    return Host()
