"""params.yaml as typed dataclasses: every default and every bad-value message lives here.

Each stage calls `load()` first, so a bad or misspelt key stops it with one line naming the
key and what is allowed, before any work is done.
"""

from __future__ import annotations

import difflib
import re
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


def probability() -> Rule:
    """A number with 0 < x <= 1."""

    def accepts(v: Any) -> bool:
        x = _as_float(v)
        return x is not None and 0 < x <= 1

    return Rule("a number with 0 < x <= 1", accepts, lambda v: float(v))


def positive_number() -> Rule:
    def accepts(v: Any) -> bool:
        x = _as_float(v)
        return x is not None and x > 0 and x != float("inf")

    return Rule("a number > 0", accepts, lambda v: float(v))


def one_of(*options: str) -> Rule:
    return Rule("one of " + ", ".join(options), lambda v: v in options)


def boolean() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool))


def auto_or_boolean() -> Rule:
    return Rule("auto, true or false", lambda v: v == "auto" or isinstance(v, bool))


def integer_list(minimum: int = 1) -> Rule:
    def accepts(v: Any) -> bool:
        return isinstance(v, list) and all(_is_int(x) and x >= minimum for x in v)

    return Rule(f"a list of integers >= {minimum}", accepts, tuple)


def text() -> Rule:
    return Rule("a string", lambda v: isinstance(v, str))


def regex() -> Rule:
    def accepts(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        try:
            re.compile(v)
        except re.error:
            return False
        return True

    return Rule("a valid regular expression (or empty)", accepts)


def hex_digest(length: int) -> Rule:
    return Rule(f"{length} hexadecimal digits", lambda v: isinstance(v, str) and re.fullmatch(f"[0-9a-f]{{{length}}}", v))


def url() -> Rule:
    return Rule("an http:// or https:// URL", lambda v: isinstance(v, str) and re.match(r"https?://[^\s/]+", v))


def param(default: Any, rule: Rule) -> Any:
    return field(default=default, metadata={"rule": rule})


def section(cls: type) -> Any:
    return field(default_factory=cls)


# ---- the schema ------------------------------------------------------------------------------

SOURCES = ("synthetic", "nih", "folder", "zip")
GROUP_BY = ("slide", "none")
PRESETS = ("seed", "compact")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
THRESHOLD_RULES = ("sensitivity", "youden", "fixed")
DISTRIBUTE = ("auto", "none", "mirrored", "multi_worker")


@dataclass(frozen=True)
class SyntheticParams:
    per_class: int = param(500, integer(1))
    slides: int = param(20, integer(3))
    seed: int = param(42, integer())


@dataclass(frozen=True)
class NihParams:
    url: str = param("https://data.lhncbc.nlm.nih.gov/public/Malaria/cell_images.zip", url())
    size: int = param(353_452_851, integer(1))
    sha256: str = param("0a949556b2414159b5100192609805376654c4266d8d187be9b1922fad43c668", hex_digest(64))


@dataclass(frozen=True)
class ClassDirs:
    """The folder name of each class, matched case-insensitively anywhere beneath data.path."""

    Parasitized: str = param("Parasitized", text())
    Uninfected: str = param("Uninfected", text())


@dataclass(frozen=True)
class DataParams:
    source: str = param("synthetic", one_of(*SOURCES))
    path: str = param("", text())  # the folder or zip of the folder and zip sources
    class_dirs: ClassDirs = section(ClassDirs)
    # regex on the file name whose first group (or whole match) names the slide; empty: NIH naming
    slide_pattern: str = param("", regex())
    max_entry_mb: int = param(64, integer(1))  # larger archive entries are rejected
    max_total_mb: int = param(20_000, integer(1))  # larger archives are refused
    synthetic: SyntheticParams = section(SyntheticParams)
    nih: NihParams = section(NihParams)


@dataclass(frozen=True)
class PreprocessParams:
    image_size: int = param(64, integer(8))
    workers: int = param(0, integer(0))  # 0: one per available core
    min_side: int = param(16, integer(1))  # smaller images are rejected
    max_pixels: int = param(4_000_000, integer(1))  # larger images are rejected before decoding


@dataclass(frozen=True)
class SplitParams:
    group_by: str = param("slide", one_of(*GROUP_BY))
    test_size: float = param(0.2, fraction())
    val_size: float = param(0.1, fraction())  # a fraction of what the test split leaves
    seed: int = param(42, integer())


@dataclass(frozen=True)
class SeedNetParams:
    """The tutorial's network: two conv blocks, then a Dense -> BatchNorm -> Dropout block per dense unit."""

    filters: int = param(32, integer(1))
    dense_units: tuple[int, ...] = param((512, 256), integer_list(1))
    conv_dropout: float = param(0.2, fraction(allow_zero=True))
    dense_dropout: float = param(0.2, fraction(allow_zero=True))


@dataclass(frozen=True)
class CompactNetParams:
    """A small network: a conv stem, then one separable-conv stage per width, global average pooling."""

    widths: tuple[int, ...] = param((24, 48, 96, 192), integer_list(1))
    dropout: float = param(0.3, fraction(allow_zero=True))


@dataclass(frozen=True)
class ModelParams:
    preset: str = param("compact", one_of(*PRESETS))
    # Keras's default 0.99 averages over ~100 steps: too slow for a small set, whose few hundred
    # steps leave the inference-time statistics far from the trained weights' (see README).
    bn_momentum: float = param(0.9, fraction())
    seed: SeedNetParams = section(SeedNetParams)
    compact: CompactNetParams = section(CompactNetParams)


@dataclass(frozen=True)
class TrainParams:
    batch_size: int = param(64, integer(1))
    learning_rate: float = param(0.001, positive_number())
    optimizer: str = param("adam", one_of(*OPTIMIZERS))
    seed: int = param(42, integer())
    augment: bool = param(True, boolean())  # flips, 90-degree turns, brightness, contrast and hue jitter
    class_weights: bool = param(True, boolean())  # weigh classes by their inverse frequency in train
    early_stopping: int = param(6, integer(0))  # epochs without a better val loss before stopping; 0: off
    reduce_lr: int = param(3, integer(0))  # epochs without a better val loss before halving the rate; 0: off
    # auto: mirrored when more than one GPU is visible, else none; multi_worker reads TF_CONFIG
    distribute: str = param("auto", one_of(*DISTRIBUTE))
    # true: float16 on a GPU, bfloat16 on a CPU; auto: true with a GPU, false on a CPU (see benchmarks)
    mixed_precision: str | bool = param("auto", auto_or_boolean())


@dataclass(frozen=True)
class PredictParams:
    batch_size: int = param(256, integer(1))  # cells per forward pass whenever the model scores cells


@dataclass(frozen=True)
class ThresholdParams:
    """How the validation split picks the P(Parasitized) at or above which a cell is called Parasitized."""

    rule: str = param("sensitivity", one_of(*THRESHOLD_RULES))
    min_sensitivity: float = param(0.95, probability())  # for rule sensitivity
    value: float = param(0.5, fraction())  # for rule fixed


@dataclass(frozen=True)
class EvaluateParams:
    bootstrap: int = param(1000, integer(100))  # slide resamples behind each confidence interval
    confidence: float = param(0.95, fraction())
    seed: int = param(42, integer())
    calibration_bins: int = param(10, integer(2))
    gallery: int = param(16, integer(0))  # most confident mistakes shown
    gradcam: int = param(4, integer(0))  # Grad-CAM overlays per outcome (TP, FP, FN, TN)


@dataclass(frozen=True)
class ExportParams:
    representative: int = param(200, integer(1))  # train crops that calibrate the int8 model's value ranges
    min_int8_agreement: float = param(0.99, probability())  # share of test cells int8 must call as Keras does


@dataclass(frozen=True)
class Params:
    epochs: int = param(25, integer(1))
    data: DataParams = section(DataParams)
    preprocess: PreprocessParams = section(PreprocessParams)
    split: SplitParams = section(SplitParams)
    model: ModelParams = section(ModelParams)
    train: TrainParams = section(TrainParams)
    predict: PredictParams = section(PredictParams)
    threshold: ThresholdParams = section(ThresholdParams)
    evaluate: EvaluateParams = section(EvaluateParams)
    export: ExportParams = section(ExportParams)


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
    p = _build(Params, raw, prefix="", source=source)
    if p.data.source in ("folder", "zip") and not p.data.path:
        raise ParamsError(f"{source}: data.path must name the {p.data.source} to read when data.source is {p.data.source}")
    if len(set(name.lower() for name in (p.data.class_dirs.Parasitized, p.data.class_dirs.Uninfected))) < 2:
        raise ParamsError(f"{source}: data.class_dirs must name two different folders")
    return p


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
