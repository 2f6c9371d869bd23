"""Configuration helpers: clear errors for bad values, and a table of every setting.

The configuration classes themselves live with what they configure
(:class:`kgrec.fusion.config.RecommenderConfig` and its sections,
:class:`kgrec.encoders.text.TextEncoderConfig`). They are pydantic models, whose
own messages name the field but only the bound that was crossed. This module
turns those errors into a :class:`~kgrec.errors.ConfigError` that names the field,
the value found and the whole allowed range::

    >>> make_config(train={"epochs": 0})
    Traceback (most recent call last):
    kgrec.errors.ConfigError: train.epochs=0: expected an integer from 1 to 10000 (maximum epochs)

:func:`config_error` and :func:`field_rule` only need pydantic and a model class,
so any configuration class can use them; a class deriving from :class:`ConfigModel`
raises such a :class:`ConfigError` from its constructor and ``model_validate`` itself.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from kgrec.errors import ConfigError

if TYPE_CHECKING:
    from kgrec.fusion.config import RecommenderConfig

M = TypeVar("M", bound=BaseModel)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation (``TrainConfig``, ``TrainConfig | None``), if any."""
    for a in get_args(annotation) or (annotation,):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _section(model: type[BaseModel], path: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The (nested) model class at ``path`` (``("train",)`` -> TrainConfig), or None."""
    cls: type[BaseModel] | None = model
    for part in path:
        info = cls.model_fields.get(part) if cls is not None and isinstance(part, str) else None
        if info is None:
            return None
        cls = _model_of(info.annotation)
    return cls


def _bounds(info: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in info.metadata:
        for key in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            v = getattr(m, key, None)
            if v is not None:
                out[key] = v
    return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)


def field_rule(info: Any) -> str:
    """What a field accepts, in words: "an integer from 1 to 10000", "one of 'cpu', 'cuda', 'auto'"."""
    ann = info.annotation
    args = get_args(ann)
    optional = get_origin(ann) in (Union, types.UnionType) and type(None) in args
    if optional:
        ann = next(a for a in args if a is not type(None))
    if get_origin(ann) is Literal:
        rule = "one of " + ", ".join(repr(a) for a in get_args(ann))
    elif ann is bool:
        rule = "true or false"
    elif isinstance(ann, type) and issubclass(ann, BaseModel):
        rule = f"a mapping of {ann.__name__} settings"
    else:
        kind = {int: "an integer", float: "a number", str: "a string"}.get(ann, f"a {getattr(ann, '__name__', ann)}")
        b = _bounds(info)
        if ann is str:
            lo, hi = b.get("min_length"), b.get("max_length")
            if lo is not None and hi is not None:
                rule = f"a string of {_num(lo)} to {_num(hi)} characters"
            elif lo is not None:
                rule = f"a string of at least {_num(lo)} characters"
            else:
                rule = kind
        else:
            low = ("from", b["ge"]) if "ge" in b else ("above", b["gt"]) if "gt" in b else None
            high = ("to", b["le"]) if "le" in b else ("below", b["lt"]) if "lt" in b else None
            if low and high:
                if low[0] == "from" and high[0] == "to":
                    rule = f"{kind} from {_num(low[1])} to {_num(high[1])}"
                else:
                    lo_s = f"≥ {_num(low[1])}" if low[0] == "from" else f"> {_num(low[1])}"
                    hi_s = f"≤ {_num(high[1])}" if high[0] == "to" else f"< {_num(high[1])}"
                    rule = f"{kind} {lo_s} and {hi_s}"
            elif low:
                rule = f"{kind} {'of at least' if low[0] == 'from' else 'above'} {_num(low[1])}"
            elif high:
                rule = f"{kind} {'of at most' if high[0] == 'to' else 'below'} {_num(high[1])}"
            else:
                rule = kind
    return f"{rule}, or null" if optional else rule


def _problems(exc: ValidationError, model: type[BaseModel]) -> list[tuple[tuple[int | str, ...], str]]:
    """(location, text after the field name) of each error; ConfigErrors raised inside are unwrapped."""
    out: list[tuple[tuple[int | str, ...], str]] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        inner = (err.get("ctx") or {}).get("error")
        if err["type"] == "value_error" and isinstance(getattr(inner, "problems", None), list):
            # a section that is a ConfigModel itself raised a ConfigError: keep its fields, under this location
            out += [(loc + sub, text) for sub, text in inner.problems]
            continue
        section = _section(model, loc[:-1])
        info = section.model_fields.get(loc[-1]) if section is not None and loc and isinstance(loc[-1], str) else None
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(section.model_fields) if section is not None else "?"
            out.append((loc, f": unknown setting; expected one of {allowed}"))
            continue
        found = err.get("input")
        found_s = json.dumps(found) if isinstance(found, (str, int, float, bool)) or found is None else repr(found)
        if info is None:
            out.append((loc, f"={found_s}: {err['msg']}"))
            continue
        desc = f" ({info.description})" if info.description else ""
        out.append((loc, f"={found_s}: expected {field_rule(info)}{desc}"))
    return out


def config_error(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """A :class:`ConfigError` naming each bad field, the value found and the allowed range.

    Args:
        exc: the error pydantic raised while validating ``model``.
        model: the model class that was validated (nested sections are followed).

    Returns:
        The error; its ``problems`` attribute lists ``(location, text)`` per bad field.
    """
    problems = _problems(exc, model)
    err = ConfigError("; ".join((".".join(map(str, loc)) or model.__name__) + text for loc, text in problems))
    err.problems = problems  # type: ignore[attr-defined]
    return err


class ConfigModel(BaseModel):
    """A pydantic configuration base class whose validation errors are ConfigErrors.

    The constructor, ``model_validate`` and ``model_validate_json`` raise a
    :class:`ConfigError` naming each bad field (dotted, nested sections followed),
    the value found and the whole allowed range, instead of pydantic's
    ``ValidationError``. Unknown settings are refused (``extra="forbid"``).
    """

    model_config = ConfigDict(extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise config_error(e, type(self)) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as e:
            raise config_error(e, cls) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as e:
            raise config_error(e, cls) from None


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def validate(model: type[M], data: Mapping[str, Any] | M | None = None, /, **sections: Any) -> M:
    """``model.model_validate`` with a :class:`ConfigError` (field, value, range) instead of pydantic's error.

    ``data`` is a mapping (or an instance, copied); keyword arguments override its
    entries, sections merged key by key (``train={"epochs": 5}`` keeps the other
    ``train`` settings of ``data``).
    """
    raw: dict[str, Any] = data.model_dump() if isinstance(data, BaseModel) else dict(data or {})
    raw = _merge(raw, sections)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise config_error(e, model) from None


def make_config(
    data: Mapping[str, Any] | str | Path | RecommenderConfig | None = None, /, **sections: Any
) -> RecommenderConfig:
    """A validated :class:`~kgrec.fusion.config.RecommenderConfig`.

    Args:
        data: a mapping of settings, a JSON file (the format of a model's ``config.json``
            and of ``kgrec train --config``), a config to copy, or None for the defaults.
        **sections: settings that override those of ``data``, section by section, e.g.
            ``train={"epochs": 20}`` (the other ``train`` settings of ``data`` stay) or
            ``device="cpu"``.

    Raises:
        ConfigError: a value outside its allowed range, a wrong type or an unknown
            setting, naming the field (``train.epochs``), the value and what is allowed.
    """
    from kgrec.fusion.config import RecommenderConfig

    if isinstance(data, (str, Path)):
        p = Path(data).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: no such config file; expected a JSON file with RecommenderConfig settings")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a JSON object of settings, found {type(data).__name__}")
    return validate(RecommenderConfig, data, **sections)


def config_fields(model: type[BaseModel] | None = None) -> pd.DataFrame:
    """Every setting of a configuration class as a table, nested sections flattened.

    Args:
        model: the class (default :class:`~kgrec.fusion.config.RecommenderConfig`).

    Returns:
        DataFrame ``field`` (dotted name, e.g. ``train.epochs``), ``default``,
        ``allowed`` (in words), ``description``; one row per leaf setting, in
        declaration order.
    """
    if model is None:
        from kgrec.fusion.config import RecommenderConfig

        model = RecommenderConfig
    rows: list[dict[str, Any]] = []

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, info in cls.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            default = info.get_default(call_default_factory=True)
            rows.append({"field": prefix + name, "default": default, "allowed": field_rule(info),
                         "description": info.description or ""})

    walk(model, "")
    return pd.DataFrame(rows, columns=["field", "default", "allowed", "description"])
