"""params.yaml as typed dataclasses: every default and every bad-value message lives here.

Each stage calls `load()` first, so a bad or misspelt key stops it with one line naming the
key and what is allowed, before any work is done.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from malaria_cnn.errors import UserError

PARAMS_FILE = "params.yaml"


class ParamsError(UserError):
    """A key in params.yaml is unknown or holds a value that is not allowed."""


@dataclass(frozen=True)
class Rule:
    """What a value must be: `describe` completes the sentence "KEY must be ..."."""

    describe: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _as_float(v: Any) -> float | None:
    # YAML 1.1 reads `1e-3` as a string; accept any numeric spelling, never a bool.
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def integer(minimum: int | None = None) -> Rule:
    if minimum is None:
        return Rule("an integer", _is_int)
    return Rule(f"an integer >= {minimum}", lambda v: _is_int(v) and v >= minimum)


def fraction(*, allow_zero: bool = False) -> Rule:
    """A number strictly below 1 and above 0 (or at least 0 when `allow_zero`)."""
    low = "0 <=" if allow_zero else "0 <"

    def accepts(v: Any) -> bool:
        x = _as_float(v)
        return x is not None and (x >= 0 if allow_zero else x > 0) and x < 1

    return Rule(f"a number with {low} x < 1", accepts, lambda v: float(v))


def positive_number() -> Rule:
    def accepts(v: Any) -> bool:
        x = _as_float(v)
        return x is not None and x > 0 and x != float("inf")

    return Rule("a number > 0", accepts, lambda v: float(v))


def one_of(*options: str) -> Rule:
    return Rule("one of " + ", ".join(options), lambda v: v in options)


def integer_list(minimum: int = 1) -> Rule:
    def accepts(v: Any) -> bool:
        return isinstance(v, list) and all(_is_int(x) and x >= minimum for x in v)

    return Rule(f"a list of integers >= {minimum}", accepts, tuple)


def param(default: Any, rule: Rule) -> Any:
    return field(default=default, metadata={"rule": rule})


def section(cls: type) -> Any:
    return field(default_factory=cls)


# ---- the schema ------------------------------------------------------------------------------

SOURCES = ("synthetic",)
GROUP_BY = ("slide", "none")
PRESETS = ("seed",)
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


@dataclass(frozen=True)
class SyntheticParams:
    per_class: int = param(500, integer(1))
    slides: int = param(20, integer(3))
    seed: int = param(42, integer())


@dataclass(frozen=True)
class DataParams:
    source: str = param("synthetic", one_of(*SOURCES))
    synthetic: SyntheticParams = section(SyntheticParams)


@dataclass(frozen=True)
class PreprocessParams:
    image_size: int = param(64, integer(8))
    workers: int = param(0, integer(0))  # 0: one per available core


@dataclass(frozen=True)
class SplitParams:
    group_by: str = param("slide", one_of(*GROUP_BY))
    test_size: float = param(0.2, fraction())
    val_size: float = param(0.1, fraction())  # a fraction of what the test split leaves
    seed: int = param(42, integer())


@dataclass(frozen=True)
class ModelParams:
    preset: str = param("seed", one_of(*PRESETS))
    filters: int = param(32, integer(1))
    dense_units: tuple[int, ...] = param((512, 256), integer_list(1))
    conv_dropout: float = param(0.2, fraction(allow_zero=True))
    dense_dropout: float = param(0.2, fraction(allow_zero=True))
    # Keras's default 0.99 averages over ~100 steps: too slow for a small set, whose few hundred
    # steps leave the inference-time statistics far from the trained weights' (see README).
    bn_momentum: float = param(0.9, fraction())


@dataclass(frozen=True)
class TrainParams:
    batch_size: int = param(64, integer(1))
    learning_rate: float = param(0.001, positive_number())
    optimizer: str = param("adam", one_of(*OPTIMIZERS))
    seed: int = param(42, integer())


@dataclass(frozen=True)
class EvaluateParams:
    threshold: float = param(0.5, fraction())  # P(Parasitized) at or above which a cell is called Parasitized
    batch_size: int = param(256, integer(1))


@dataclass(frozen=True)
class Params:
    epochs: int = param(25, integer(1))
    data: DataParams = section(DataParams)
    preprocess: PreprocessParams = section(PreprocessParams)
    split: SplitParams = section(SplitParams)
    model: ModelParams = section(ModelParams)
    train: TrainParams = section(TrainParams)
    evaluate: EvaluateParams = section(EvaluateParams)


# ---- loading ---------------------------------------------------------------------------------


def load(path: str | Path = PARAMS_FILE) -> Params:
    """Read and check params.yaml; raise ParamsError with one readable line if anything is off."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path} not found (run the stages from the project's root folder)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path} is not valid YAML{where}") from None
    return from_dict(raw if raw is not None else {}, source=str(path))


def from_dict(raw: Any, source: str = PARAMS_FILE) -> Params:
    """Build Params from a mapping, checking every key and value."""
    return _build(Params, raw, prefix="", source=source)


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: {where} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ParamsError(
                f"{source}: unknown key '{prefix}{key}'{hint}; keys allowed in {where}: {', '.join(known)}"
            )
    values = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        if is_dataclass(hints[f.name]):
            values[f.name] = _build(hints[f.name], value, f"{prefix}{f.name}.", source)
            continue
        rule: Rule = f.metadata["rule"]
        if not rule.accepts(value):
            raise ParamsError(f"{source}: {prefix}{f.name} must be {rule.describe}, got {value!r}")
        values[f.name] = rule.convert(value)
    return cls(**values)
