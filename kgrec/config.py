"""The configuration base on the ground floor: clear errors for bad values, and a table of settings.

Every configuration class of kgrec (:class:`kgrec.fusion.config.RecommenderConfig`
and its sections, :class:`kgrec.encoders.text.TextEncoderConfig`,
:class:`kgrec.web.config.WebConfig`) derives from :class:`ConfigModel`, whose
constructor and ``model_validate`` raise a :class:`~kgrec.errors.ConfigError` that
names the field, the value found and the whole allowed range::

    >>> from pydantic import Field
    >>> class Knob(ConfigModel):
    ...     n: int = Field(1, ge=1, le=5, description="how many")
    >>> Knob(n=0)
    Traceback (most recent call last):
    kgrec.errors.ConfigError: n=0: expected an integer from 1 to 5 (how many)

This module needs only pydantic and :mod:`kgrec.errors`, so every layer may
import it. :func:`kgrec.make_config` and :func:`kgrec.config_fields`
(:mod:`kgrec.config_tools`) apply it to the recommender's configuration.
"""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from kgrec.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["ConfigModel", "config_error", "config_fields", "field_error", "field_rule", "validate"]

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
        if err["type"] == "value_error" and isinstance(inner, ConfigError):
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
    err.problems = problems
    return err


def field_error(field: str, value: Any, expected: str) -> ConfigError:
    """A :class:`ConfigError` for one field, for cross-field checks inside a validator.

    Raised from a pydantic validator of a :class:`ConfigModel`, it keeps its field
    (under the section it belongs to) in the final message:
    ``field_error("default_k", 20, "at most max_k (10)")`` reads
    ``default_k=20: expected at most max_k (10)``.
    """
    found = json.dumps(value) if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
    text = f"={found}: expected {expected}"
    err = ConfigError(field + text)
    err.problems = [((field,), text)]
    return err


class ConfigModel(BaseModel):
    """A pydantic configuration base class whose validation errors are ConfigErrors.

    The constructor, ``model_validate`` and ``model_validate_json`` raise a
    :class:`ConfigError` naming each bad field (dotted, nested sections followed),
    the value found and the whole allowed range, instead of pydantic's
    ``ValidationError``. Unknown settings are refused (``extra="forbid"``).

    A setting that an earlier kgrec wrote but this one no longer has is listed in
    :attr:`removed_settings` (name -> why): it is dropped with a logged warning
    instead of refused, so configs saved with older models still load.
    """

    model_config = ConfigDict(extra="forbid")

    #: settings that older versions had, with the reason they were removed; dropped on input
    removed_settings: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _drop_removed_settings(cls, data: Any) -> Any:
        if not cls.removed_settings or not isinstance(data, Mapping):
            return data
        gone = [k for k in cls.removed_settings if k in data]
        if not gone:
            return data
        for k in gone:
            log.warning("%s setting %r is no longer used (%s); ignored", cls.__name__, k, cls.removed_settings[k])
        return {k: v for k, v in data.items() if k not in gone}

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


def config_fields(model: type[BaseModel]) -> pd.DataFrame:
    """Every setting of a configuration class as a table, nested sections flattened.

    Args:
        model: the class (:func:`kgrec.config_fields` defaults it to
            :class:`~kgrec.fusion.config.RecommenderConfig`).

    Returns:
        DataFrame ``field`` (dotted name, e.g. ``train.epochs``), ``default``,
        ``allowed`` (in words), ``description``; one row per leaf setting, in
        declaration order.
    """
    rows: list[dict[str, Any]] = []

    def walk(cls: type[BaseModel], prefix: str) -> None:
        for name, info in cls.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            default = info.get_default(call_default_factory=True)
            rows.append(
                {
                    "field": prefix + name,
                    "default": default,
                    "allowed": field_rule(info),
                    "description": info.description or "",
                }
            )

    walk(model, "")
    return pd.DataFrame(rows, columns=["field", "default", "allowed", "description"])
