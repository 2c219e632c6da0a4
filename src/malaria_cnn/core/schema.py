"""How params are declared, checked and written: the machinery behind core/params.py.

A knob is a dataclass field made by `param(default, rule, help)`: the default and the help live
there once, `build` checks a mapping read from YAML against the rules, and `render` writes the
whole schema back out as params.yaml, comments included.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import yaml

from malaria_cnn.core.errors import UserError

COMMENT_COLUMN = 27  # where params.yaml's comments start, unless the line is longer


class ParamsError(UserError):
    """A key in params.yaml is unknown or holds a value that is not allowed."""


@dataclass(frozen=True)
class Rule:
    """What a value must be: `describe` completes the sentence "KEY must be ..."."""

    describe: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda v: v
    item: type | None = None  # a list of sections: each entry is built as this dataclass


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


def integer(minimum: int | None = None, maximum: int | None = None) -> Rule:
    if minimum is None:
        return Rule("an integer", _is_int)
    if maximum is not None:
        return Rule(f"an integer from {minimum} to {maximum}", lambda v: _is_int(v) and minimum <= v <= maximum)
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


def auto_or_fraction() -> Rule:
    """auto, or a number with 0 < x < 1."""

    def accepts(v: Any) -> bool:
        x = _as_float(v) if v != "auto" else None
        return v == "auto" or (x is not None and 0 < x < 1)

    return Rule("auto or a number with 0 < x < 1", accepts, lambda v: v if v == "auto" else float(v))


def integer_list(minimum: int = 1) -> Rule:
    def accepts(v: Any) -> bool:
        return isinstance(v, list) and all(_is_int(x) and x >= minimum for x in v)

    return Rule(f"a list of integers >= {minimum}", accepts, tuple)


def section_list(cls: type) -> Rule:
    """A list of sections, each a mapping of `cls`'s keys (checked as a section is)."""
    return Rule("a list of mappings", lambda v: isinstance(v, list), tuple, item=cls)


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


def param(default: Any, rule: Rule, help: str = "") -> Any:
    """A knob: its default, what it must be, and the comment params.yaml shows beside it."""
    return field(default=default, metadata={"rule": rule, "help": help})


def section(cls: type, help: str = "") -> Any:
    """A group of knobs (a dataclass), with the comment params.yaml shows beside its name."""
    return field(default_factory=cls, metadata={"help": help})




def build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    """An instance of `cls` from a mapping: every key known, every value allowed, defaults for the rest."""
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
            values[f.name] = build(hints[f.name], value, f"{prefix}{f.name}.", source)
            continue
        rule: Rule = f.metadata["rule"]
        if not rule.accepts(value):
            raise ParamsError(f"{source}: {prefix}{f.name} must be {rule.describe}, got {value!r}")
        values[f.name] = rule.convert(value)
        if rule.item is not None:
            values[f.name] = tuple(build(rule.item, entry, f"{prefix}{f.name}[{i}].", source)
                                   for i, entry in enumerate(value))
    return cls(**values)


def render(instance: Any, header: str) -> str:
    """The YAML text of a params dataclass instance: `header` as comments, each value with its help."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _render_section(instance, 0, lines)
    return "\n".join(lines) + "\n"


def _render_section(instance: Any, depth: int, lines: list[str]) -> None:
    for f in fields(instance):
        value = getattr(instance, f.name)
        if depth == 0:
            lines.append("")
        text = "  " * depth + f"{f.name}:" + ("" if is_dataclass(value) else f" {_scalar(value)}")
        help_lines = f.metadata.get("help", "").splitlines() or [""]
        column = max(COMMENT_COLUMN, len(text) + 2)
        lines.append(f"{text.ljust(column)}# {help_lines[0]}" if help_lines[0] else text)
        lines.extend(" " * column + f"# {more}" for more in help_lines[1:])
        if is_dataclass(value):
            _render_section(value, depth + 1, lines)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    plain = isinstance(value, str) and value and re.fullmatch(r"[\w./:<>-]+", value)
    return value if plain and yaml.safe_load(value) == value else json.dumps(value)
