"""Every configuration class derives from the ground-floor ConfigModel and raises ConfigError (field, value, range)."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest

import kgrec
from kgrec.config import ConfigModel
from kgrec.encoders.text import TextEncoderConfig
from kgrec.errors import ConfigError
from kgrec.fusion.config import ExplainConfig, ModelConfig, RecommenderConfig, TrainConfig
from kgrec.web.config import WebConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig, ExplainConfig, RecommenderConfig, TextEncoderConfig, WebConfig])
def test_every_config_derives_from_the_base(cls: type) -> None:
    assert issubclass(cls, ConfigModel)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: ModelConfig(dim=2), r"^dim=2: expected an integer from 4 to 1024 \(size of the structural"),
        (lambda: TrainConfig(lr=0), r"^lr=0: expected a number > 0 and ≤ 1 \(Adam learning rate\)$"),
        (lambda: ExplainConfig(anchors=0), r"^anchors=0: expected an integer from 1 to 100000 "),
        (lambda: RecommenderConfig(explain={"interaction_verb": ""}),
         r"^explain\.interaction_verb=\"\": expected a string of 1 to 40 characters"),
        (lambda: TextEncoderConfig(max_length=4), r"^max_length=4: expected an integer from 8 to 4096 \(tokens per text"),
        (lambda: TextEncoderConfig(batch_size="many"), r"^batch_size=\"many\": expected an integer from 1 to 4096 "),
        (lambda: RecommenderConfig(text={"max_length": 5000}), r"^text\.max_length=5000: expected an integer from 8 to 4096 "),
        (lambda: WebConfig(max_k=0), r"^max_k=0: expected an integer from 1 to 1000 \(largest k accepted"),
        (lambda: WebConfig(session_hours=0), r"^session_hours=0: expected a number > 0 and ≤ 720 "),
        (lambda: WebConfig(default_k=20, max_k=10), r"^default_k=20: expected an integer from 1 to max_k \(10\)$"),
        (lambda: WebConfig.model_validate({"colour": "red"}), r"^colour: unknown setting; expected one of store, model, "),
        (lambda: WebConfig.from_env(top_paths=0), r"^top_paths=0: expected an integer from 1 to 100 "),
    ],
)
def test_a_bad_value_names_field_value_and_range(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_web_config_stays_frozen_and_round_trips() -> None:
    cfg = WebConfig(default_k=5, max_k=50)
    assert WebConfig.model_validate_json(cfg.to_env()) == cfg
    with pytest.raises(Exception, match="frozen"):
        cfg.max_k = 3  # type: ignore[misc]


# A config.json as kgrec wrote it before `device` and `explain.max_paths` were removed (they were never read).
LEGACY_CONFIG = {
    "model": {"dim": 48, "layers": 2, "recency_half_life": 25.0, "item_text_in_gnn": False, "recent_window": 50,
              "content_dropout": 0.1, "fusion": "gate", "use_text": True, "use_structure": True},
    "train": {"epochs": 7},
    "text": {"model_path": None, "max_length": 128, "batch_size": 64, "cache": True, "cache_dir": None},
    "explain": {"interaction_verb": "watched", "anchors": 30, "max_paths": 10},
    "device": "cpu",
}


def test_a_saved_config_with_removed_settings_still_loads(caplog: pytest.LogCaptureFixture) -> None:
    """What Recommender.load does with an older model directory's config.json."""
    with caplog.at_level(logging.WARNING, logger="kgrec.config"):
        cfg = RecommenderConfig.model_validate_json(json.dumps(LEGACY_CONFIG))
    assert (cfg.model.dim, cfg.train.epochs, cfg.explain.interaction_verb) == (48, 7, "watched")
    assert "device" not in cfg.model_dump() and "max_paths" not in cfg.model_dump()["explain"]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "'device' is no longer used" in said and "'max_paths' is no longer used" in said
    # and it saves without them, in the current format
    assert RecommenderConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert kgrec.make_config(LEGACY_CONFIG) == cfg


def test_other_unknown_settings_are_still_refused() -> None:
    with pytest.raises(ConfigError, match=r"^devices: unknown setting; expected one of model, train, text, explain$"):
        RecommenderConfig.model_validate({"devices": "cpu"})


def _kgrec_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kgrec"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("kgrec")}
    return out


def test_the_config_base_is_on_the_ground_floor() -> None:
    """kgrec/config.py imports nothing of kgrec but the errors; the configs below import it, not config_tools."""
    assert _kgrec_imports(REPO / "kgrec" / "config.py") == {"kgrec.errors"}
    for f in ("fusion/config.py", "encoders/text.py", "web/config.py"):
        imports = _kgrec_imports(REPO / "kgrec" / f)
        assert "kgrec.config" in imports and "kgrec.config_tools" not in imports, f
    # the public names of the old module still work
    from kgrec import config_tools

    assert config_tools.ConfigModel is ConfigModel and kgrec.make_config is config_tools.make_config
