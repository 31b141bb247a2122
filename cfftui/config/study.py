"""experiments.toml -> typed, fully validated Study objects; every error names file, line and key."""

from __future__ import annotations

import ast
import glob
import itertools
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cfftui.config.locate import KeyPath, Locator, dotted, records
from cfftui.spec import (
    BUILTIN_DATASETS,
    SAFE_NAME,
    SECTIONS,
    RunConfig,
    SpecError,
    check_value,
    config_from_dict,
    config_keys,
    config_to_dict,
    flatten,
    run_id_for,
    suggest,
    unflatten,
)

METRICS = ("top1", "top5")
EXECUTORS = ("local", "ray")
MAX_SEED = 2**32 - 1  # numpy's and most samplers' seed range
STUDY_KEYS = ("cfftui", "defaults", "experiments")
CFFTUI_KEYS = ("runs",)
SHARED_KEYS = ("dataset", "seeds", "analysis", "execution", *SECTIONS)
DEFAULTS_KEYS = SHARED_KEYS
EXPERIMENT_KEYS = ("description", "factors", *SHARED_KEYS)
ANALYSIS_KEYS = ("compare", "metric", "levels", "bootstrap", "seed")
EXECUTION_KEYS = ("executor", "jobs", "gpus", "runs_per_gpu", "threads_per_run", "retries",
                  "hang_timeout_s", "ray_address", "cpus_per_run")
COMMAND_LINE = "command line"

# Where a value came from: a key path in the study file, or the text of a `--set KEY` option.
Origin = KeyPath | str


class StudyError(Exception):
    """One clear line: '<file>:<line>: <dotted.key>: <message>' (line omitted when unknown)."""

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        self.file, self.line, self.key, self.message = file, line, key, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True)
class Level:
    """One level of a factor."""

    label: str
    """'clamp', '128', or the name of a named-table level ('aggressive')."""
    values: dict[str, Any]
    """Dotted config key -> the value this level sets."""


@dataclass(frozen=True)
class Factor:
    key: str
    """A dotted config key ('loss.margin_mode') or, for named-table levels, the factor's name."""
    levels: tuple[Level, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(level.label for level in self.levels)


@dataclass(frozen=True)
class Analysis:
    compare: str
    """The factor whose two levels form the variance ratio."""
    metric: str
    """A result field: 'top1' or 'top5'."""
    levels: tuple[str, str] | None
    """Labels (a, b) of `compare` for the ratio a/b; always filled in by load_study."""
    bootstrap: int
    seed: int


@dataclass(frozen=True)
class Execution:
    executor: str = "local"
    jobs: int = 0
    """Max concurrent runs (0: GPUs x runs_per_gpu, or CPU cores // threads_per_run)."""
    gpus: tuple[int, ...] | None = None
    """GPU indices to use (None: all discovered; (): none)."""
    runs_per_gpu: int = 1
    threads_per_run: int = 0
    """Torch CPU threads per worker on CPU-only machines (0: cores // jobs)."""
    retries: int = 2
    hang_timeout_s: float = 600.0
    ray_address: str | None = None
    cpus_per_run: float = 1.0


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    base: RunConfig
    """Defaults table + the experiment's own settings + command-line overrides, validated."""
    seeds: tuple[int, ...]
    factors: tuple[Factor, ...]
    analysis: Analysis
    execution: Execution

    def cells(self) -> list[dict[str, Level]]:
        """The cartesian product of the factors' levels, first factor slowest."""
        keys = [f.key for f in self.factors]
        combos = itertools.product(*(f.levels for f in self.factors))
        return [dict(zip(keys, combo, strict=True)) for combo in combos]

    def config_for(self, cell: Mapping[str, Level]) -> RunConfig:
        """The resolved configuration of one cell: the base with each level's values applied."""
        flat = flatten(config_to_dict(self.base))
        for level in cell.values():
            flat.update(level.values)
        return config_from_dict(unflatten(flat))

    def factor(self, key: str) -> Factor:
        return next(f for f in self.factors if f.key == key)


@dataclass(frozen=True)
class Study:
    path: str
    experiments: dict[str, Experiment]
    """In file order."""
    runs_dir: str | None = None
    """[cfftui] runs = "..." resolved against the study file's folder, if given."""

    def select(self, names: Iterable[str]) -> list[Experiment]:
        """The named experiments in the order given (all when none); unknown names are a StudyError."""
        names = list(names)
        for name in names:
            if name not in self.experiments:
                known = list(self.experiments)
                raise StudyError(self.path, None, name, f"unknown experiment{suggest(name, known)}; "
                                 f"the study has {', '.join(known)}")
        return [self.experiments[n] for n in names] if names else list(self.experiments.values())


def default_study_text() -> str:
    """The shipped experiments.toml, so `cfftui demo` works from any folder."""
    return resources.files("cfftui.config").joinpath("experiments.toml").read_text(encoding="utf-8")


@dataclass
class _Setting:
    value: Any
    origin: Origin


@dataclass
class _Overrides:
    config: dict[str, _Setting] = field(default_factory=dict)
    seeds: _Setting | None = None
    analysis: dict[str, _Setting] = field(default_factory=dict)
    execution: dict[str, _Setting] = field(default_factory=dict)


class _Loader:
    """Validates one study file; `fail` turns an origin and a message into a StudyError."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.folder = Path(path).expanduser().absolute().parent
        self._locator: Locator | None = None

    @property
    def locator(self) -> Locator:
        if self._locator is None:
            self._locator = Locator(self.text)
        return self._locator

    def fail(self, origin: Origin, message: str) -> StudyError:
        if isinstance(origin, str):
            return StudyError(COMMAND_LINE, None, f"--set {origin}", message)
        return StudyError(self.path, self.locator.line_of(origin), dotted(origin), message)

    # -- the document --------------------------------------------------------------------------

    def parse(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as e:
            raise self.syntax_error(str(e)) from None

    def syntax_error(self, message: str) -> StudyError:
        at = re.search(r"\(at (?:line (\d+), column \d+|end of document)\)$", message)
        line = (int(at.group(1)) if at.group(1) else len(self.text.splitlines()) or 1) if at else None
        reason = message[: at.start()].strip() if at else message
        twice = re.match(r"Cannot declare (\(.*\)) twice", reason)
        if twice or reason == "Cannot overwrite a value":
            path = tuple(ast.literal_eval(twice.group(1))) if twice else self.key_on_line(line)
            first = self.first_line(path, before=line) if path else None
            name = dotted(path) if path else "a key"
            kind = "experiment" if len(path) == 2 and path[0] == "experiments" else "key"
            where = f" (first at line {first})" if first else ""
            return StudyError(self.path, line, "", f"duplicate {kind}: {name} is defined twice{where}; "
                              f"TOML allows each key once")
        return StudyError(self.path, line, "", f"invalid TOML: {reason[:1].lower()}{reason[1:]}")

    def head(self, line: int | None) -> str:
        return "".join(self.text.splitlines(keepends=True)[: line or 0])

    def key_on_line(self, line: int | None) -> KeyPath:
        on_line = [p for p, at in records(self.head(line)) if at == line and not isinstance(p[-1], int)]
        return on_line[0] if on_line else ()  # the pair's own key, not a key of an inline table after it

    def first_line(self, path: KeyPath, before: int | None) -> int | None:
        # `a.b = 1` defines table a on its line too, so a later `a = {...}` clashes with it.
        found = (at for p, at in records(self.head(before)) if p[: len(path)] == path and at != before)
        return next(found, None)

    # -- small checks ----------------------------------------------------------------------------

    def table(self, value: Any, origin: Origin, allowed: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(origin, f"expected a table, got {_show(value)}")
        for key in value:
            quoted_setting = key.split(".", 1)[0] in SECTIONS and bool(SECTIONS.keys() & set(allowed))
            if key not in allowed and not quoted_setting:
                raise self.fail(_child(origin, key), f"unknown key{suggest(key, list(allowed))}; "
                                f"expected one of {', '.join(allowed)}")
        return value

    def typed(self, setting: _Setting, kind: type, *, lo: float | None = None, lo_open: bool = False,
              choices: Sequence[str] | None = None) -> Any:
        value = setting.value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(setting.origin, f"expected {_KIND_NAMES[kind]}, got {_show(value)}")
        if choices is not None and value not in choices:
            raise self.fail(setting.origin, f"{value!r} is not one of {', '.join(choices)}"
                            f"{suggest(value, list(choices))}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise self.fail(setting.origin, f"must be {'greater than' if lo_open else 'at least'} {lo:g}, "
                            f"got {value!r}")
        return value

    def config_value(self, key: str, setting: _Setting) -> Any:
        try:
            return check_value(key, setting.value)
        except SpecError as e:
            raise self.fail(setting.origin, _keyed(setting.origin, key, e.message)) from None

    def build(self, settings: Mapping[str, _Setting], blame: Origin, context: str = "") -> RunConfig:
        """A RunConfig from checked dotted settings; a cross-field error points where its key was set."""
        try:
            config = config_from_dict(unflatten({k: s.value for k, s in settings.items()}))
        except SpecError as e:
            origin = settings[e.key].origin if e.key in settings else blame
            raise self.fail(origin, context + _keyed(origin, e.key, e.message)) from None
        problem = dataset_problem(config)
        if problem:
            origin = next((settings[k].origin for k in ("data.dataset", "data.root") if k in settings), blame)
            raise self.fail(origin, context + _keyed(origin, "data.dataset", problem))
        return config

    # -- command-line overrides ----------------------------------------------------------------

    def overrides(self, items: Sequence[str]) -> _Overrides:
        out = _Overrides()
        config = config_keys()
        for item in items:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise StudyError(COMMAND_LINE, None, f"--set {item}",
                                 "expected KEY=VALUE, e.g. train.epochs=5")
            setting = _Setting(parse_value(raw.strip()), key)
            head, _, tail = key.partition(".")
            if key == "dataset":
                key = "data.dataset"
            if key in config:
                setting.value = self.config_value(key, setting)
                out.config[key] = setting
            elif key == "seeds":
                out.seeds = setting
            elif head == "analysis" and tail in ANALYSIS_KEYS:
                out.analysis[tail] = setting
            elif head == "execution" and tail in EXECUTION_KEYS:
                out.execution[tail] = setting
            else:
                known = [*config, "dataset", "seeds", *(f"analysis.{k}" for k in ANALYSIS_KEYS),
                         *(f"execution.{k}" for k in EXECUTION_KEYS)]
                raise self.fail(key, f"unknown key{suggest(key, known)}; expected a run-configuration key "
                                "(train.epochs), dataset, seeds, analysis.* or execution.*")
        return out

    # -- tables --------------------------------------------------------------------------------

    def settings_of(self, table: dict[str, Any], path: KeyPath) -> dict[str, _Setting]:
        """The run-configuration settings of a defaults or experiment table, values checked."""
        out: dict[str, _Setting] = {}
        if "dataset" in table:
            if isinstance(table.get("data"), dict) and "dataset" in table["data"]:
                raise self.fail(path + ("dataset",), "set twice: both `dataset` and `data.dataset` are given")
            out["data.dataset"] = _Setting(table["dataset"], path + ("dataset",))
        for section in SECTIONS:
            if section not in table:
                continue
            values = table[section]
            if not isinstance(values, dict):
                raise self.fail(path + (section,),
                                f"expected a table of {section} settings, got {_show(values)}")
            for name, value in values.items():
                out[f"{section}.{name}"] = _Setting(value, path + (section, name))
        for key, value in table.items():  # quoted dotted keys, "train.epochs" = 5, as factors write them
            if "." in key and key.split(".", 1)[0] in SECTIONS:
                if key in out:
                    raise self.fail(path + (key,), f"set twice: both {key} and \"{key}\" are given")
                out[key] = _Setting(value, path + (key,))
        for key, setting in out.items():
            setting.value = self.config_value(key, setting)
        return out

    def resolve_root(self, settings: dict[str, _Setting], path: KeyPath) -> None:
        """Relative data roots are relative to the study file's folder (or, from --set, to the shell's)."""
        if "data.root" in settings:
            s = settings["data.root"]
            folder = Path.cwd() if isinstance(s.origin, str) else self.folder
            settings["data.root"] = _Setting(str(_resolve(folder, s.value)), s.origin)
        else:
            settings["data.root"] = _Setting(str(_resolve(self.folder, RunConfig().data.root)), path)

    def seeds(self, setting: _Setting | None, path: KeyPath) -> tuple[int, ...]:
        if setting is None:
            raise self.fail(path, "seeds: missing; give a count (seeds = 7 means 0..6) or a list of seeds")
        value = setting.value
        if isinstance(value, int) and not isinstance(value, bool):
            if not 1 <= value <= 100_000:
                raise self.fail(setting.origin,
                                f"the number of seeds must be between 1 and 100000, got {value}")
            return tuple(range(value))
        if not isinstance(value, list):
            raise self.fail(setting.origin, f"expected a count or a list of seeds, got {_show(value)}")
        if not value:
            raise self.fail(setting.origin, "the list of seeds is empty; give at least one")
        seen: dict[int, int] = {}
        for i, seed in enumerate(value):
            origin = _child(setting.origin, i)
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
                raise self.fail(origin,
                                f"a seed must be an integer between 0 and {MAX_SEED}, got {_show(seed)}")
            if seed in seen:
                raise self.fail(origin, f"seed {seed} is listed twice (entries {seen[seed]} and {i})")
            seen[seed] = i
        return tuple(value)

    def factors(self, table: Any, path: KeyPath) -> list[tuple[Factor, list[_LevelSource]]]:
        if not isinstance(table, dict):
            raise self.fail(path, f"expected a table of factors, got {_show(table)}")
        found: list[tuple[Factor, list[_LevelSource]]] = []
        for name, value in table.items():
            if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                found.append(self.named_factor(name, value, path + (name,)))
            else:
                found.extend(self.listed_factors(name, value, path + (name,)))
        keys: dict[str, KeyPath] = {}
        setters: dict[str, str] = {}
        for factor, sources in found:
            origin = sources[0].origin[:-1] if sources else path
            if factor.key in keys:
                raise self.fail(origin, f"factor {factor.key} is given twice")
            keys[factor.key] = origin
            for config_key in sorted({k for level in factor.levels for k in level.values}):
                if config_key in setters:
                    raise self.fail(origin, f"factors {setters[config_key]} and {factor.key} both set "
                                    f"{config_key}; a key may belong to one factor only")
                setters[config_key] = factor.key
        return found

    def listed_factors(self, name: str, value: Any, path: KeyPath) -> list[tuple[Factor, list[_LevelSource]]]:
        """`"loss.margin_mode" = [...]`, or the same written as nested tables (loss.margin_mode = [...])."""
        if isinstance(value, dict):
            out = []
            for child, inner in value.items():
                out.extend(self.listed_factors(f"{name}.{child}", inner, path + (child,)))
            if not out:
                raise self.fail(path, "a factor needs levels: a list of values, or named tables of settings")
            return out
        keys = config_keys()
        if name not in keys:
            raise self.fail(path, f"not a run-configuration key{suggest(name, list(keys))}; a factor is a "
                            "dotted key with a list of levels, or a table of named levels")
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of levels, got {_show(value)}")
        if not value:
            raise self.fail(path, "the list of levels is empty; give at least one")
        levels: list[Level] = []
        sources: list[_LevelSource] = []
        for i, raw in enumerate(value):
            origin = path + (i,)
            if isinstance(raw, (dict, list)):
                raise self.fail(origin, "a level in a list must be a plain value; use named tables "
                                "([...factors.NAME.LEVEL]) for levels that set several keys")
            checked = self.config_value(name, _Setting(raw, origin))
            label = level_label(raw)
            for j, earlier in enumerate(levels):
                if earlier.label == label or earlier.values[name] == checked:
                    raise self.fail(origin, f"level {label} repeats level {earlier.label} (entry {j})")
            levels.append(Level(label, {name: checked}))
            sources.append(_LevelSource(origin, {name: origin}))
        return [(Factor(name, tuple(levels)), sources)]

    def named_factor(self, name: str, table: dict[str, Any],
                     path: KeyPath) -> tuple[Factor, list[_LevelSource]]:
        if not SAFE_NAME.match(name):
            raise self.fail(path, "a factor name must be letters, digits, '_', '-' or '.', starting with a "
                            "letter or digit")
        if name in config_keys():
            raise self.fail(path, "a factor named after a configuration key needs a list of levels; "
                            "name a factor of named tables differently")
        levels: list[Level] = []
        sources: list[_LevelSource] = []
        for label, settings in table.items():
            origin = path + (label,)
            if not SAFE_NAME.match(label):
                raise self.fail(origin, "a level name must be letters, digits, '_', '-' or '.', "
                                "starting with a letter or digit")
            values: dict[str, Any] = {}
            origins: dict[str, KeyPath] = {}
            for key, (value, at) in _leaves(settings, origin).items():
                key = "data.dataset" if key == "dataset" else key
                values[key] = self.config_value(key, _Setting(value, at))
                origins[key] = at
            levels.append(Level(label, values))
            sources.append(_LevelSource(origin, origins))
        for i, level in enumerate(levels):
            for earlier in levels[:i]:
                if level.values == earlier.values:
                    raise self.fail(sources[i].origin, f"level {level.label} sets the same values as level "
                                    f"{earlier.label}")
        return Factor(name, tuple(levels)), sources

    def analysis(self, settings: dict[str, _Setting], factors: Sequence[Factor], path: KeyPath) -> Analysis:
        get = settings.get
        comparable = [f for f in factors if len(f.levels) >= 2]
        if not comparable:
            raise self.fail(path + ("factors",), "needs a factor with at least two levels: the analysis "
                            "compares two levels of one factor")
        compare = comparable[0]
        if (s := get("compare")) is not None:
            name = self.typed(s, str)
            keys = [f.key for f in factors]
            if name not in keys:
                raise self.fail(s.origin, f"{name!r} is not a factor of this experiment"
                                f"{suggest(name, keys)}; its factors are {', '.join(keys) or 'none'}")
            compare = next(f for f in factors if f.key == name)
            if len(compare.levels) < 2:
                raise self.fail(s.origin, f"factor {name} has one level; a comparison needs two")
        metric = self.typed(get("metric") or _Setting("top1", ()), str, choices=METRICS)
        levels = compare.labels[:2]
        if (s := get("levels")) is not None:
            if not isinstance(s.value, list) or len(s.value) != 2:
                raise self.fail(s.origin, f"expected two levels of {compare.key} as [a, b] (the ratio a/b), "
                                f"got {_show(s.value)}")
            picked = [self.pick_level(compare, raw, _child(s.origin, i)) for i, raw in enumerate(s.value)]
            if picked[0] == picked[1]:
                raise self.fail(s.origin, f"the two levels must differ, got {picked[0]} twice")
            levels = (picked[0], picked[1])
        bootstrap = self.typed(get("bootstrap") or _Setting(10_000, ()), int, lo=1000)
        seed = self.typed(get("seed") or _Setting(0, ()), int, lo=0)
        return Analysis(compare.key, metric, (levels[0], levels[1]), bootstrap, seed)

    def pick_level(self, factor: Factor, raw: Any, origin: Origin) -> str:
        label = level_label(raw) if not isinstance(raw, (dict, list)) else None
        if label in factor.labels:
            return label
        for level in factor.levels:  # 1 and 1.0 name the same level of a float factor
            if factor.key in level.values and _same_number(level.values[factor.key], raw):
                return level.label
        hint = suggest(str(label), factor.labels)
        raise self.fail(origin, f"{_show(raw)} is not a level of {factor.key}{hint}; "
                        f"its levels are {', '.join(factor.labels)}")

    def execution(self, settings: dict[str, _Setting]) -> Execution:
        d = Execution()

        def get(key: str, kind: type, **rules: Any) -> Any:
            s = settings.get(key)
            return getattr(d, key) if s is None else self.typed(s, kind, **rules)

        gpus: tuple[int, ...] | None = d.gpus
        if (s := settings.get("gpus")) is not None:
            if s.value == "all":
                gpus = None
            elif isinstance(s.value, list):
                for i, g in enumerate(s.value):
                    self.typed(_Setting(g, _child(s.origin, i)), int, lo=0)
                    if g in s.value[:i]:
                        raise self.fail(_child(s.origin, i), f"GPU {g} is listed twice")
                gpus = tuple(s.value)
            else:
                raise self.fail(s.origin, f'expected "all" or a list of GPU indices, got {_show(s.value)}')
        ray_address = d.ray_address
        if (s := settings.get("ray_address")) is not None:
            ray_address = self.typed(s, str) or None
        return Execution(
            executor=get("executor", str, choices=EXECUTORS),
            jobs=get("jobs", int, lo=0),
            gpus=gpus,
            runs_per_gpu=get("runs_per_gpu", int, lo=1),
            threads_per_run=get("threads_per_run", int, lo=0),
            retries=get("retries", int, lo=0),
            hang_timeout_s=get("hang_timeout_s", float, lo=0, lo_open=True),
            ray_address=ray_address,
            cpus_per_run=get("cpus_per_run", float, lo=0, lo_open=True),
        )

    # -- one experiment ------------------------------------------------------------------------

    def experiment(self, name: str, table: Any, defaults: dict[str, Any], over: _Overrides) -> Experiment:
        path: KeyPath = ("experiments", name)
        if not SAFE_NAME.match(name):
            raise self.fail(path, "an experiment name must be a safe folder name: letters, digits, '_', '-' "
                            "or '.', starting with a letter or digit, at most 64 characters")
        table = self.table(table, path, EXPERIMENT_KEYS)
        description = table.get("description", "")
        if not isinstance(description, str):
            raise self.fail(path + ("description",), f"expected a string, got {_show(description)}")

        settings = self.settings_of(defaults, ("defaults",)) | self.settings_of(table, path)
        settings |= over.config
        self.resolve_root(settings, path)
        base = self.build(settings, path)

        seeds = self.seeds(over.seeds or _setting_in(table, path, "seeds")
                           or _setting_in(defaults, ("defaults",), "seeds"), path)

        parsed = self.factors(table.get("factors", {}), path + ("factors",))
        factors = [_pinned(f, over.config) for f, _ in parsed]
        for factor in factors:
            distinct = {tuple(sorted(level.values.items())) for level in factor.levels}
            if len(distinct) < len(factor.levels):
                key = next(k for level in factor.levels for k in level.values if k in over.config)
                raise self.fail(key, f"pins factor {factor.key} of experiment {name}: its levels would "
                                "all run the same value; leave it out, or make it a one-level factor")
        base_flat = flatten(config_to_dict(base))
        for factor, (_, sources) in zip(factors, parsed, strict=True):
            for level, source in zip(factor.levels, sources, strict=True):
                # A level that breaks a rule alone is blamed for it, whichever key the rule names.
                level_settings = {k: _Setting(v, source.origin) for k, v in base_flat.items()}
                level_settings |= {k: _Setting(v, source.origins.get(k, source.origin))
                                   for k, v in level.values.items()}
                self.build(level_settings, source.origin, context=f"level {level.label} of {factor.key}: ")
        self.check_cells(factors, base, path + ("factors",))

        analysis = self.analysis(self.merged(defaults, table, "analysis", ANALYSIS_KEYS, path, over.analysis),
                                 factors, path)
        execution = self.execution(self.merged(defaults, table, "execution", EXECUTION_KEYS, path,
                                               over.execution))
        return Experiment(name, description, base, seeds, tuple(factors), analysis, execution)

    def merged(self, defaults: dict[str, Any], table: dict[str, Any], section: str, allowed: Sequence[str],
               path: KeyPath, over: dict[str, _Setting]) -> dict[str, _Setting]:
        out: dict[str, _Setting] = {}
        for source, where in ((defaults, ("defaults",)), (table, path)):
            if section in source:
                values = self.table(source[section], where + (section,), allowed)
                out |= {k: _Setting(v, where + (section, k)) for k, v in values.items()}
        return out | over

    def check_cells(self, factors: Sequence[Factor], base: RunConfig, path: KeyPath) -> None:
        """Levels that are fine alone can still clash together, or make two cells the same run."""
        probe = Experiment("check", "", base, (0,), tuple(factors), Analysis("", "top1", None, 1000, 0),
                           Execution())
        seen: dict[str, str] = {}
        for cell in probe.cells():
            label = " ".join(f"{k.rsplit('.', 1)[-1]}={lv.label}" for k, lv in cell.items()) or "all"
            try:
                config = probe.config_for(cell)
            except SpecError as e:
                raise self.fail(path, f"cell {label}: {e}") from None
            identity = run_id_for(config, 0)
            if identity in seen:
                raise self.fail(path, f"cells {seen[identity]} and {label} resolve to the same "
                                "configuration (levels that differ only in placement keys such as data.root "
                                "or runtime.device)")
            seen[identity] = label

    def study(self, overrides: Sequence[str]) -> Study:
        doc = self.parse()
        over = self.overrides(overrides)
        self.table(doc, (), STUDY_KEYS)
        runs_dir = None
        if "cfftui" in doc:
            tool = self.table(doc["cfftui"], ("cfftui",), CFFTUI_KEYS)
            if "runs" in tool:
                runs = self.typed(_Setting(tool["runs"], ("cfftui", "runs")), str)
                runs_dir = str(_resolve(self.folder, runs))
        defaults = self.table(doc.get("defaults", {}), ("defaults",), DEFAULTS_KEYS)
        if "experiments" not in doc:
            raise self.fail((), "no [experiments.NAME] table: a study needs at least one experiment")
        experiments = self.table(doc["experiments"], ("experiments",), list(doc["experiments"]))
        if not experiments:
            raise self.fail(("experiments",), "empty: a study needs at least one experiment")
        built = {name: self.experiment(name, table, defaults, over) for name, table in experiments.items()}
        return Study(self.path, built, runs_dir)


@dataclass
class _LevelSource:
    origin: KeyPath
    origins: dict[str, KeyPath]


def load_study(path: str | Path, overrides: Sequence[str] = (), *, source: str | None = None) -> Study:
    """Read and validate a whole study; raises StudyError, one line naming file, line and key."""
    path = str(path)
    if source is None:
        try:
            source = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StudyError(path, None, "", "no such file (pass the study file with --file)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise StudyError(path, None, "", f"cannot read the study file: {e}") from None
    return _Loader(path, source).study(overrides)


def parse_value(raw: str) -> Any:
    """A command-line value as TOML reads it (5, 0.1, true, [1, 2], "x"); anything else is a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def level_label(value: Any) -> str:
    """The label of a listed level, written as in the file: 'clamp', '128', '0.5', 'true'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


def dataset_problem(config: RunConfig) -> str | None:
    """Why the configured dataset cannot be found, or None."""
    name, root = config.data.dataset, Path(config.data.root)
    if name in BUILTIN_DATASETS:
        return None
    if not SAFE_NAME.match(name):
        return f"{name!r} is not a dataset name (letters, digits, '_', '-', '.')"
    train = glob.glob(os.path.join(glob.escape(str(root)), f"{glob.escape(name)}-train*.npz"))
    if train and (root / f"{name}-test.npz").is_file():
        return None
    return (f"unknown dataset {name!r}{suggest(name, BUILTIN_DATASETS)}: not built in "
            f"({', '.join(BUILTIN_DATASETS)}) and no {name}-train*.npz with {name}-test.npz in {root}")


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _keyed(origin: Origin, key: str, message: str) -> str:
    """The message, prefixed with the config key unless the origin already names it."""
    if isinstance(origin, str):
        parts = [origin.split("[", 1)[0]]
    else:
        parts = [p for p in origin if isinstance(p, str)]
    named = any(".".join(parts[-n:]) == key for n in range(1, min(len(parts), 3) + 1))
    if not named and parts and key == "data.dataset" and parts[-1] == "dataset":
        named = True  # the `dataset = ...` shorthand
    return message if named else f"{key}: {message}"


def _child(origin: Origin, part: str | int) -> Origin:
    if isinstance(origin, str):
        return f"{origin}[{part}]" if isinstance(part, int) else f"{origin}.{part}"
    return origin + (part,)


def _setting_in(table: dict[str, Any], path: KeyPath, key: str) -> _Setting | None:
    return _Setting(table[key], path + (key,)) if key in table else None


def _leaves(table: Any, path: KeyPath) -> dict[str, tuple[Any, KeyPath]]:
    """A named level's settings, written as quoted dotted keys or nested tables, keyed by dotted key."""
    out: dict[str, tuple[Any, KeyPath]] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out |= {f"{key}.{k}": v for k, v in _leaves(value, path + (key,)).items()}
        else:
            out[key] = (value, path + (key,))
    return out


def _pinned(factor: Factor, pinned: Mapping[str, _Setting]) -> Factor:
    """Command-line overrides win over level values too (--set train.epochs=1 shortens every cell)."""
    if not any(k in pinned for level in factor.levels for k in level.values):
        return factor
    return Factor(factor.key, tuple(Level(lv.label, {k: pinned[k].value if k in pinned else v
                                                     for k, v in lv.values.items()}) for lv in factor.levels))


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool)
            and not isinstance(b, bool) and float(a) == float(b))


def _resolve(folder: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(os.path.normpath(folder / p))
