"""Fine-tuning the text encoder on behaviour (issue 16 part 1): the pairs, the frozen and trained layers, the loss,
the saved Hugging Face folder, the fingerprint that keeps caches apart, and `kgrec train --finetune-text`.

A small random BERT whose WordPiece vocabulary is the synthetic data's words stands in for the real model (the
mechanics do not need pre-trained weights); one slow test runs the real MiniLM with one layer."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec import Recommender, loaders
from kgrec.cli import main
from kgrec.encoders.behaviour import behaviour_text, item_texts, user_texts
from kgrec.encoders.text import TextEncoder, TextEncoderConfig
from kgrec.errors import ConfigError, KgrecError
from kgrec.fusion.config import RecommenderConfig
from kgrec.fusion.inputs import finetune_pairs
from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import SyntheticConfig

LAYERS = 3


def _words(ds: loaders.Dataset) -> list[str]:
    """Every word and punctuation mark of the data set's item and behaviour texts (lower case)."""
    v = Vocabularies.from_dataset(ds)
    words: set[str] = set()
    for t in [*item_texts(ds, v), *user_texts(ds, v), "tags categories keywords"]:
        words.update(re.findall(r"\w+|[^\w\s]", t.lower()))
    return sorted(words)


def make_bert(folder: Path, words: list[str], seed: int, layers: int = LAYERS) -> Path:
    """A small random BERT (hidden 32) with this vocabulary, saved as a local Hugging Face folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=96,
    )
    BertModel(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def ds() -> loaders.Dataset:
    return loaders.synthetic(SyntheticConfig(users=40, items=36, communities=3, interactions_per_user=10, seed=3))


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory, ds: loaders.Dataset) -> Path:
    return make_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", _words(ds), seed=0)


def _config(bert: Path, cache: Path, **finetune: object) -> RecommenderConfig:
    return RecommenderConfig.model_validate(
        {
            "model": {"dim": 16},
            "train": {"epochs": 4, "batch_size": 64, "seed": 0},
            "text": {
                "model_path": str(bert),
                "max_length": 64,
                "cache_dir": str(cache),
                "finetune": {
                    "enabled": True,
                    "layers": 1,
                    "epochs": 6,
                    "pairs": 120,
                    "batch_size": 16,
                    "lr": 5e-3,
                    "temperature": 0.1,
                    "device": "cpu",
                    **finetune,
                },
            },
        }
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, ds: loaders.Dataset, bert: Path) -> Recommender:
    cache = tmp_path_factory.mktemp("text-cache")
    return Recommender(_config(bert, cache)).fit(ds, progress=False)


def _tensors(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


# ------------------------------------------------------------------ the pairs
def _tiny_dataset() -> loaders.Dataset:
    items = pd.DataFrame({"item": ["a", "b", "c", "d", "e"], "title": ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]})
    inter = pd.DataFrame(
        {
            "user": ["u", "u", "u", "u", "v", "v"],
            "item": ["a", "c", "b", "d", "e", "a"],
            "timestamp": [1, 2, 2, 3, 5, 6],  # b and c: one tie group
            "text": ["", "", "great", "", "", ""],
        }
    )
    tags = pd.DataFrame({"user": ["u", "u"], "item": ["a", "d"], "tag": ["old tag", "future tag"]})
    return loaders.from_frames(inter, items, tags=tags)


def test_pairs_read_only_strictly_earlier_behaviour_in_user_texts_form() -> None:
    ds = _tiny_dataset()
    v = Vocabularies.from_dataset(ds)
    pairs = finetune_pairs(ds, v, 100, seed=0)
    got = {(v.item.ids[i], pairs.queries[q]) for q, i in zip(pairs.query.tolist(), pairs.item.tolist(), strict=True)}
    # a user's first timestamp has nothing before it; a tie group's items never see each other
    assert got == {
        ("b", "Tags: old tag. Alpha"),
        ("c", "Tags: old tag. Alpha"),
        ("d", "Tags: old tag. Bravo: great; Charlie; Alpha"),  # newest first, the tie in title order
        ("a", "Echo"),
    }
    assert pairs.eligible == 4 and len(set(pairs.query.tolist())) == 3  # one text for the tie group's two items
    # the same text user_texts builds for the user's history before d (the future tag left out)
    before_d = loaders.from_frames(
        ds.interactions[ds.interactions["item"] != "d"],
        ds.items,
        tags=pd.DataFrame({"user": ["u"], "item": ["a"], "tag": ["old tag"]}),
    )
    assert user_texts(before_d, Vocabularies.from_dataset(before_d))[0] == behaviour_text(
        ["Bravo: great", "Charlie", "Alpha"], "old tag"
    )
    assert pairs.items == item_texts(ds, v)
    assert len(finetune_pairs(ds, v, 2, seed=1)) == 2


# ------------------------------------------------------------------ training
def test_only_the_top_layers_change(fitted: Recommender, bert: Path) -> None:
    tuned = Path(fitted.state.config.text.finetuned_path)
    before, after = _tensors(bert), _tensors(tuned)
    assert set(before) == set(after)
    top = f"encoder.layer.{LAYERS - 1}."
    changed = {k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy())}
    assert changed and all(k.startswith(top) for k in changed)  # everything below is bit-identical
    trained = [k for k in before if k.startswith(top) and k.endswith(".weight")]
    assert trained and set(trained) <= changed  # every weight matrix of the top layer moved


def test_the_loss_goes_down_and_the_metrics_say_what_was_tuned(fitted: Recommender) -> None:
    r = fitted.metrics["text_finetune"]
    assert (r["layers"], r["of_layers"], r["epochs"], r["pairs"], r["device"]) == (1, LAYERS, 6, 120, "cpu")
    assert r["eligible_pairs"] > 120  # sampled from more
    assert r["steps"] == 6 * 8 and r["seconds"] > 0 and r["frozen_seconds"] > 0  # 120 pairs, 16 a step
    assert r["loss_last"] < r["loss_first"] and r["epoch_losses"][-1] < r["epoch_losses"][0]
    assert r["base_model"] != r["model"] and fitted.metrics["text_model"] == r["model"]


def test_after_fit_the_recommender_s_config_is_the_one_it_was_trained_with(
    fitted: Recommender, ds: loaders.Dataset
) -> None:
    """An in-process fit with fine-tuning: ``rec.config`` names the fine-tuned encoder (it showed the pre-fit config,
    so whatever encoded text from ``rec.config``, e.g. the deletion test's rescorer, used the frozen encoder)."""
    from kgrec.fusion.faithfulness import Rescorer

    tuned = fitted.state.config.text.finetuned_path
    assert tuned is not None and fitted.config.text.finetuned_path == tuned
    assert fitted.config == fitted.state.config
    rescorer = Rescorer(fitted, ds)
    assert rescorer.encoder is not None
    assert rescorer.encoder.fingerprint == TextEncoder(fitted.state.config.text).fingerprint


def test_more_layers_than_the_model_has_is_a_config_error(ds: loaders.Dataset, bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^text\.finetune\.layers=4: expected an integer from 1 to {LAYERS} "):
        Recommender(_config(bert, tmp_path, layers=4)).fit(ds, progress=False)
    with pytest.raises(ConfigError, match=r"^text\.finetune\.temperature=0: expected a number > 0 and ≤ 10 "):
        RecommenderConfig.model_validate({"text": {"finetune": {"temperature": 0}}})
    with pytest.raises(ConfigError, match=r"^text\.finetune\.enabled=true: expected false with train\.workers=2"):
        RecommenderConfig.model_validate({"text": {"finetune": {"enabled": True}}, "train": {"workers": 2}})


def test_the_device_is_cuda_only_when_asked_for_and_there(caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from kgrec.encoders.finetune import resolve_device

    gpu = torch.cuda.is_available()
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if gpu else "cpu")
    with caplog.at_level("WARNING", logger="kgrec.encoders.finetune"):
        assert resolve_device("cuda") == ("cuda" if gpu else "cpu")
    assert gpu or "torch sees no GPU: fine-tuning on the CPU" in caplog.text


# ------------------------------------------------------------------ the saved model
def test_the_saved_model_holds_its_encoder_and_a_reload_gives_the_same_vectors(
    fitted: Recommender, ds: loaders.Dataset, tmp_path: Path
) -> None:
    from transformers import AutoModel, AutoTokenizer

    out = fitted.save(tmp_path / "model")
    folder = out / "text-encoder"
    assert {"config.json", "model.safetensors"} <= {f.name for f in folder.iterdir()}
    assert any(f.name.startswith("tokenizer") or f.name == "vocab.txt" for f in folder.iterdir())
    AutoModel.from_pretrained(str(folder), local_files_only=True)
    AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    saved = json.loads((out / "config.json").read_text())
    assert saved["text"]["finetuned_path"] == "text-encoder"
    assert "text-encoder/model.safetensors" in json.loads((out / "checksums.json").read_text())
    # moved elsewhere, it still finds its own encoder
    moved = shutil.copytree(out, tmp_path / "elsewhere" / "model")
    loaded = Recommender.load(moved)
    assert loaded.state.config.text.finetuned_path == str((moved / "text-encoder").resolve())
    assert np.array_equal(loaded.state.arrays["users"], fitted.state.arrays["users"])
    texts = ["galaxy rocket astronaut", "reef whale submarine lighthouse"]  # not encoded before
    fresh = TextEncoder(loaded.state.config.text.model_copy(update={"cache": False}))
    scratch = TextEncoder(fitted.state.config.text.model_copy(update={"cache": False}))  # the folder fit wrote
    assert Path(scratch.model_path) != Path(fresh.model_path)
    assert np.allclose(fresh.encode(texts, progress=False), scratch.encode(texts, progress=False), atol=1e-6)
    a = fitted.recommend_new_user(text="galaxy rocket", k=5)
    b = loaded.recommend_new_user(text="galaxy rocket", k=5)
    assert a["item"].tolist() == b["item"].tolist() and np.allclose(a["score"], b["score"], atol=1e-5)
    # saved again over its own folder (what kgrec forget does), it still holds its encoder
    loaded.save(moved)
    again = Recommender.load(moved)
    assert again.state.config.text.finetuned_path == loaded.state.config.text.finetuned_path
    assert np.allclose(
        TextEncoder(again.state.config.text).encode(texts, progress=False), fresh.encode(texts, progress=False)
    )
    # a warm start keeps the fine-tuned encoder
    warm = loaded.warm_start(ds, progress=False)
    assert warm.state.config.text.finetuned_path == str((moved / "text-encoder").resolve())
    assert warm.metrics["text_finetune"] == fitted.metrics["text_finetune"]


def test_a_broken_saved_encoder_is_reported(fitted: Recommender, tmp_path: Path) -> None:
    out = fitted.save(tmp_path / "model")
    (out / "text-encoder" / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(KgrecError, match=r"text-encoder/model\.safetensors: sha256 .*retrain"):
        Recommender.load(out)


def test_the_fine_tuned_encoder_has_its_own_fingerprint_and_cache(fitted: Recommender, tmp_path: Path) -> None:
    cfg = fitted.state.config.text.model_copy(update={"cache_dir": str(tmp_path)})
    frozen = cfg.model_copy(update={"finetuned_path": None})
    base, tuned = TextEncoder(frozen), TextEncoder(cfg)
    assert base.fingerprint != tuned.fingerprint
    texts = ["orchid meadow harvest", "dragon knight kingdom"]
    vb = base.encode(texts, progress=False)
    vt = tuned.encode(texts, progress=False)  # after the frozen model cached the same texts
    assert not np.allclose(vb, vt, atol=1e-3)
    shards = {d.name: sorted(d.glob("*.npz")) for d in (tmp_path / "text").iterdir()}
    assert set(shards) == {f"{base.name}-{base.fingerprint}", f"{tuned.name}-{tuned.fingerprint}"}
    assert all(len(s) == 1 for s in shards.values())
    # new encoders read each its own vectors back from disk
    assert np.array_equal(TextEncoder(frozen).encode(texts, progress=False), vb)
    assert np.array_equal(TextEncoder(cfg).encode(texts, progress=False), vt)


def test_same_size_weights_with_different_values_get_different_fingerprints(
    ds: loaders.Dataset, tmp_path: Path
) -> None:
    """Regression: the fingerprint hashed only the weight files' sizes, so a fine-tuned copy of the same size read
    the vectors cached for the model it came from."""
    words = _words(ds)
    a = make_bert(tmp_path / "a" / "bert", words, seed=1)
    b = make_bert(tmp_path / "b" / "bert", words, seed=2)
    assert (a / "model.safetensors").stat().st_size == (b / "model.safetensors").stat().st_size
    assert (a / "config.json").read_bytes() == (b / "config.json").read_bytes()
    cache = tmp_path / "cache"
    ea = TextEncoder(TextEncoderConfig(model_path=str(a), max_length=32, cache_dir=str(cache)))
    eb = TextEncoder(TextEncoderConfig(model_path=str(b), max_length=32, cache_dir=str(cache)))
    assert ea.fingerprint != eb.fingerprint
    texts = ["galaxy rocket", "reef whale"]
    va = ea.encode(texts, progress=False)
    vb = eb.encode(texts, progress=False)
    assert not np.allclose(va, vb, atol=1e-3)
    assert sorted(p.name for p in (cache / "text").iterdir()) == sorted(
        {f"bert-{ea.fingerprint}", f"bert-{eb.fingerprint}"}
    )


def _cached_keys(root: Path) -> dict[str, set[str]]:
    """The cache keys held by each encoder's cache folder under ``root`` (``<cache_dir>/text``)."""
    out: dict[str, set[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        out[folder.name] = set()
        for shard in folder.glob("*.npz"):
            with np.load(shard, allow_pickle=False) as z:
                out[folder.name].update(z["keys"].tolist())
    return out


def test_forget_clears_the_user_s_texts_from_every_encoder_s_cache(
    fitted: Recommender, ds: loaders.Dataset, bert: Path, tmp_path: Path
) -> None:
    """Two models in the store (fine-tuned, cache folder A; frozen, cache folder B) and an encoder no model uses any
    more (B): a forgotten user's behaviour texts leave all three caches (only the first model's was cleared)."""
    from kgrec.fusion.forget import behaviour_texts_of, forget_users
    from kgrec.graph import open_store
    from kgrec.loaders import batch_from_frames

    gone = "forget-me-tuned"
    cache_b = tmp_path / "cache-b"
    st = open_store(tmp_path / "store")
    st.ingest(ds)
    tuned_dir = fitted.save(tmp_path / "store" / "models" / "tuned")
    frozen = Recommender(_config(bert, cache_b, enabled=False)).fit(st, progress=False)
    frozen_dir = frozen.save(tmp_path / "store" / "models" / "frozen")
    items = frozen.vocabs.item.to_list()
    t = int(ds.interactions["timestamp"].max()) + 100
    rows = pd.DataFrame([(gone, items[n], t + n) for n in range(4)], columns=["user", "item", "timestamp"])
    st.append(batch_from_frames(rows, known_items=items))
    for d in (tuned_dir, frozen_dir):
        assert len(Recommender.load(d, store=st).recommend(gone, k=5)) == 5  # their behaviour text is encoded
    titles = set(ds.items["title"].tolist())
    private = [x for x in behaviour_texts_of(st, [gone]) if x and x not in titles]
    assert private
    old = TextEncoder(TextEncoderConfig(model_path=str(bert), max_length=48, cache_dir=str(cache_b)))
    old.encode(private, progress=False)  # an encoder of an earlier model
    keys = {TextEncoder._key(x) for x in private}
    root_a = Path(str(fitted.state.config.text.cache_dir)) / "text"
    before = {**_cached_keys(root_a), **_cached_keys(cache_b / "text")}
    tuned_fp = TextEncoder(fitted.state.config.text).fingerprint
    frozen_fp = TextEncoder(frozen.state.config.text).fingerprint
    holding = {name for name, held in before.items() if held & keys}
    assert {name.rsplit("-", 1)[1] for name in holding} >= {tuned_fp, frozen_fp, old.fingerprint}

    rep = forget_users(st, [gone], [tuned_dir, frozen_dir])
    assert rep.cache_entries >= sum(len(held & keys) for held in before.values())  # counted in each folder
    after = {**_cached_keys(root_a), **_cached_keys(cache_b / "text")}
    assert {name: held & keys for name, held in after.items() if held & keys} == {}
    assert not st.has_user(gone)


# ------------------------------------------------------------------ the command line
def test_kgrec_train_finetune_text_end_to_end(tmp_path: Path, ds: loaders.Dataset, bert: Path, capsys) -> None:
    d = tmp_path / "files"
    d.mkdir()
    ds.interactions.to_csv(d / "interactions.csv", index=False)
    items = ds.items.merge(
        ds.item_categories.groupby("item")["category"].agg("|".join).rename("categories"), on="item", how="left"
    )
    items.to_csv(d / "items.csv", index=False)
    store = tmp_path / "store"
    assert (
        main(
            [
                "ingest",
                "--store",
                str(store),
                "--interactions",
                str(d / "interactions.csv"),
                "--items-file",
                str(d / "items.csv"),
            ]
        )
        == 0
    )
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "model": {"dim": 16},
                "train": {"epochs": 2, "batch_size": 64},
                "text": {"max_length": 48, "finetune": {"pairs": 64, "batch_size": 16, "device": "cpu"}},
            }
        )
    )
    capsys.readouterr()
    rc = main(
        [
            "train",
            "--store",
            str(store),
            "--config",
            str(cfg),
            "--text-model",
            str(bert),
            "--finetune-text",
            "--finetune-layers",
            "1",
            "--finetune-epochs",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert re.search(
        rf"fine-tuned the text encoder: top 1 of {LAYERS} layers, 1 epoch, 64 pairs, loss [\d.]+ -> [\d.]+, "
        r"[\d.]+ s",
        out,
    ), out
    model = store / "models" / "default"
    assert (model / "text-encoder" / "model.safetensors").is_file()
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["text_finetune"]["layers"] == 1 and metrics["text_finetune"]["epochs"] == 1
    user = ds.interactions["user"].iloc[0]
    assert main(["recommend", "--store", str(store), "--user", user, "--k", "3", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "user,item,title,rank,score"
    # without --finetune-text (nor text.finetune.enabled in the config), the layer option says what it needs
    rc = main(["train", "--store", str(store), "--finetune-layers", "2"])
    assert rc == 2 and "--finetune-layers needs --finetune-text" in capsys.readouterr().err


# ------------------------------------------------------------------ the real model
@pytest.mark.slow
def test_the_real_minilm_with_one_layer(ds: loaders.Dataset, tmp_path: Path) -> None:
    from kgrec.encoders.finetune import finetune_encoder
    from kgrec.encoders.text import default_model_path

    v = Vocabularies.from_dataset(ds)
    pairs = finetune_pairs(ds, v, 48, seed=0)
    cfg = TextEncoderConfig(
        cache_dir=str(tmp_path / "cache"), finetune={"layers": 1, "pairs": 48, "batch_size": 16, "device": "cpu"}
    )
    r = finetune_encoder(cfg, pairs, tmp_path / "tuned", seed=0, progress=False)
    assert (r.layers, r.of_layers, r.steps) == (1, 6, 3)
    before, after = _tensors(default_model_path()), _tensors(tmp_path / "tuned")
    assert set(after) <= set(before) and set(before) - set(after) <= {"embeddings.position_ids"}  # a buffer
    changed = {k for k in after if not np.array_equal(before[k].numpy(), after[k].numpy())}
    assert changed and all(k.startswith("encoder.layer.5.") for k in changed)
    tuned = TextEncoder(cfg.model_copy(update={"finetuned_path": str(tmp_path / "tuned")}))
    assert tuned.fingerprint != TextEncoder(cfg).fingerprint and tuned.dim == 384
