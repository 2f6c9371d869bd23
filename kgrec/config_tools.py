"""The recommender's configuration, validated: :func:`make_config` and :func:`config_fields`.

The configuration classes live with what they configure
(:class:`kgrec.fusion.config.RecommenderConfig` and its sections,
:class:`kgrec.encoders.text.TextEncoderConfig`, :class:`kgrec.web.config.WebConfig`)
and derive from :class:`kgrec.config.ConfigModel`, the base on the ground floor
that turns pydantic's errors into a :class:`~kgrec.errors.ConfigError` naming the
field, the value found and the whole allowed range::

    >>> make_config(train={"epochs": 0})
    Traceback (most recent call last):
    kgrec.errors.ConfigError: train.epochs=0: expected an integer from 1 to 10000 (maximum epochs)

This module sits above :mod:`kgrec.fusion` (like :mod:`kgrec.explore`); nothing
in the package below it imports it. ``ConfigModel``, ``config_error``,
``field_rule`` and ``validate`` are re-exported from :mod:`kgrec.config` for
code written against this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from kgrec.config import ConfigModel, config_error, field_error, field_rule, validate
from kgrec.config import config_fields as fields_of
from kgrec.errors import ConfigError
from kgrec.fusion.config import RecommenderConfig

__all__ = ["ConfigModel", "config_error", "config_fields", "field_error", "field_rule", "make_config", "validate"]


def make_config(
    data: Mapping[str, Any] | str | Path | RecommenderConfig | None = None, /, **sections: Any
) -> RecommenderConfig:
    """A validated :class:`~kgrec.fusion.config.RecommenderConfig`.

    Args:
        data: a mapping of settings, a JSON file (the format of a model's ``config.json``
            and of ``kgrec train --config``), a config to copy, or None for the defaults.
        **sections: settings that override those of ``data``, section by section, e.g.
            ``train={"epochs": 20}`` (the other ``train`` settings of ``data`` stay).

    Raises:
        ConfigError: a value outside its allowed range, a wrong type or an unknown
            setting, naming the field (``train.epochs``), the value and what is allowed.
    """
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
    return fields_of(RecommenderConfig if model is None else model)
