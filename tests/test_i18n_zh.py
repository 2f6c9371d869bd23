"""Any language end to end: Chinese titles, tags, user text and attributes through ingest → train → recommend →
explain → serve, with a small local BERT whose WordPiece vocabulary is Chinese (random weights: the mechanics)."""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest

import kgrec
from kgrec import Recommender, loaders
from kgrec.cli import main
from kgrec.graph import open_store

TOKEN = "test-token-zh-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEO4J_URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")

# three themes: title nouns, a category, keywords (CJK, full-width punctuation in the titles)
THEMES = {
    "太空": (("星际", "火箭", "银河", "宇航员"), ("科幻", "外星人")),
    "海洋": (("鲸鱼", "潜艇", "灯塔", "珊瑚"), ("航海", "海盗")),
    "厨房": (("面条", "饺子", "火锅", "点心"), ("美食", "烹饪")),
}
OCCUPATIONS = {"太空": "程序员", "海洋": "水手", "厨房": "厨师"}
PUNCT = "，。：；！？（）《》“”、"
LATIN = ["star", "wars", *"0123456789", *(f"##{d}" for d in "0123456789")]


def _vocab() -> list[str]:
    chars: set[str] = set(PUNCT)
    for theme, (nouns, kws) in THEMES.items():
        for w in (theme, *nouns, *kws, OCCUPATIONS[theme], "的故事我喜欢新用户看过第集关于非常好看美食"):
            chars.update(w)
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(chars), *LATIN]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT (hidden 32) with a Chinese WordPiece vocabulary, saved as a local Hugging Face folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    d = tmp_path_factory.mktemp("zh-bert")
    (d / "vocab.txt").write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    tok = BertTokenizer(str(d / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


def _frames() -> dict[str, pd.DataFrame]:
    """Items, interactions (with Chinese review text), tags and users of three planted communities."""
    rng = np.random.default_rng(5)
    themes = list(THEMES)
    items, inter, tags, users = [], [], [], []
    for n in range(36):
        theme = themes[n % 3]
        nouns, kws = THEMES[theme]
        title = f"《{nouns[n % 4]}的故事》：第{n}集！" if n % 5 else f"Star Wars：{nouns[n % 4]} {n}"  # mixed scripts
        items.append({"item": f"物品{n}", "title": title, "description": f"关于{nouns[(n + 1) % 4]}的故事（{kws[0]}）。",
                      "categories": theme, "keywords": "|".join(kws)})
    for u in range(30):
        theme = themes[u % 3]
        uid = f"用户{u}"
        mine = [n for n in range(36) if n % 3 == u % 3]
        for t, n in enumerate(rng.choice(mine, size=8, replace=False).tolist()):
            inter.append({"user": uid, "item": f"物品{n}", "timestamp": 1_700_000_000 + 60 * (u * 10 + t),
                          "text": "我喜欢，非常好看！" if t % 2 else ""})
        tags.append({"user": uid, "item": f"物品{mine[0]}", "tag": THEMES[theme][1][1]})
        users.append({"user": uid, "职业": OCCUPATIONS[theme], "age": 20 + u, "profile": f"我喜欢{THEMES[theme][1][0]}。"})
    users.append({"user": "新用户", "职业": "厨师", "age": 33, "profile": "新用户：喜欢美食"})  # no interactions yet
    return {"items": pd.DataFrame(items), "interactions": pd.DataFrame(inter), "tags": pd.DataFrame(tags),
            "users": pd.DataFrame(users)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("zh-data")
    out = {}
    for name, df in _frames().items():
        out[name] = d / f"{name}.csv"
        df.to_csv(out[name], index=False, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path], bert: Path) -> Path:
    """Ingested and trained through the CLI, with the Chinese BERT."""
    s = tmp_path_factory.mktemp("zh") / "store"
    assert main(["ingest", "--store", str(s), "--interactions", str(files["interactions"]), "--items-file",
                 str(files["items"]), "--tags", str(files["tags"]), "--users", str(files["users"])]) == 0
    cfg = s.parent / "config.json"
    cfg.write_text(json.dumps({"model": {"dim": 16}, "train": {"epochs": 4, "batch_size": 64, "seed": 0},
                               "text": {"max_length": 24}}), encoding="utf-8")
    assert main(["train", "--store", str(s), "--config", str(cfg), "--text-model", str(bert)]) == 0
    return s


# ------------------------------------------------------------------ text: tokenisation and truncation
def test_tokenisation_of_cjk_full_width_punctuation_and_mixed_scripts(bert: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(bert), local_files_only=True)
    assert tok.tokenize("《星际的故事》：第2集！") == ["《", "星", "际", "的", "故", "事", "》", "：", "第", "2", "集", "！"]
    assert tok.tokenize("Star Wars：火箭") == ["star", "wars", "：", "火", "箭"]
    assert "[UNK]" not in tok.tokenize("关于鲸鱼的故事（航海）。我喜欢，非常好看！".replace("非常好看", "看过"))


def test_truncation_at_the_token_limit(bert: Path, tmp_path: Path) -> None:
    from kgrec.encoders.text import TextEncoder, TextEncoderConfig

    enc = TextEncoder(TextEncoderConfig(model_path=str(bert), max_length=16, cache_dir=str(tmp_path)))
    long = "星际火箭银河宇航员" * 40  # 360 characters, one token each
    a, b, short = enc.encode([long, long + "鲸鱼潜艇", "面条"], progress=False)
    assert enc.dim == 32 and np.isfinite(a).all()
    assert np.allclose(a, b, atol=1e-6)  # only the first 16 tokens (with [CLS] and [SEP]) are read
    assert not np.allclose(a, short, atol=1e-3)


# ------------------------------------------------------------------ files and stores
def test_csv_and_parquet_round_trip(files: dict[str, Path], tmp_path: Path) -> None:
    a = loaders.load_files(files["interactions"], files["items"], tags=files["tags"], users=files["users"])
    for name, f in files.items():
        pd.read_csv(f, dtype=str, keep_default_na=False).to_parquet(tmp_path / f"{name}.parquet", index=False)
    p = {n: tmp_path / f"{n}.parquet" for n in files}
    b = loaders.load_files(p["interactions"], p["items"], tags=p["tags"], users=p["users"])
    assert a.fingerprint() == b.fingerprint()
    assert "《潜艇的故事》：第1集！" in set(a.items["title"]) and "Star Wars：灯塔 10" in set(a.items["title"])
    assert set(a.tags["tag"]) == {"外星人", "海盗", "烹饪"}
    assert ("职业", "厨师") in set(map(tuple, a.user_attributes[["attribute", "value"]].values.tolist()))
    assert a.users.set_index("user").loc["新用户", "profile"] == "新用户：喜欢美食"
    st = open_store(tmp_path / "s")
    st.ingest(a)
    back = open_store(tmp_path / "s").dataset()
    for name, df in a.tables().items():
        pd.testing.assert_frame_equal(back.tables()[name], df, obj=name)


@pytest.mark.neo4j
def test_neo4j_round_trip(files: dict[str, Path], neo4j_left_empty) -> None:
    ds = loaders.load_files(files["interactions"], files["items"], tags=files["tags"], users=files["users"])
    with kgrec.open_store(NEO4J_URI) as st:
        st.wipe()
        st.ingest(ds)
        back = st.dataset()
        for name, df in ds.tables().items():
            pd.testing.assert_frame_equal(back.tables()[name], df, obj=name)
        assert st.fingerprint() == ds.fingerprint()
        got = st.cypher("MATCH (u:User {id: $u})-[:HAS_ATTRIBUTE]->(a:Attribute {name: '职业'}) RETURN a.value AS v", u="新用户")
        assert got["v"].tolist() == ["厨师"]


# ------------------------------------------------------------------ train, recommend, explain, serve
def test_recommend_and_explain_through_the_cli(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["recommend", "--store", str(store), "--user", "用户1", "--k", "5", "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    rows = recs if isinstance(recs, list) else recs["items"]
    assert len(rows) == 5 and all(r["item"].startswith("物品") for r in rows)
    item = rows[0]["item"]
    assert main(["explain", "--store", str(store), "--user", "用户1", "--item", item, "--format", "json"]) == 0
    e = json.loads(capsys.readouterr().out)
    rec = Recommender.load(store / "models" / "default", store=open_store(store))
    assert e["title"] == rec.title(item) and e["paths"], e
    assert e["paths"][0]["sentence"] == rec.explain("用户1", item).paths[0].sentence
    # the cold user known by a Chinese attribute only
    cold = rec.explain("新用户", rec.recommend("新用户", 1)["item"].iloc[0], top=10)
    attr = [p for p in cold.paths if p.kind == "attribute"]
    assert any("职业, 厨师" in p.sentence for p in attr), cold.text()
    assert rec.recommend_new_user(attributes={"职业": "水手"}, k=3)["item"].str.startswith("物品").all()


def test_serve_html_svg_and_json_keep_the_characters(store: Path) -> None:
    from fastapi.testclient import TestClient

    from kgrec.web import WebConfig, create_app

    rec = Recommender.load(store / "models" / "default", store=open_store(store))
    user = "用户2"
    item = rec.recommend(user, 1)["item"].iloc[0]
    title = rec.title(item)
    with TestClient(create_app(WebConfig(store=str(store), token=TOKEN))) as c:
        r = c.get(f"/api/users/{quote(user, safe='')}/recommendations?k=5", headers=AUTH)
        assert r.status_code == 200 and r.json()["user"] == user and r.json()["items"][0]["title"] == title
        page = c.get(f"/?user={quote(user)}&item={quote(item)}", headers=AUTH)
        assert page.status_code == 200, page.text
        assert escape(title) in page.text and escape(user) in page.text  # intact characters, escaped markup
        svg = page.text[page.text.index("<svg"): page.text.index("</svg>")]
        e = rec.explain(user, item, rec.store, top=10)
        assert any(escape(n.name) in svg for p in e.paths for n in p.nodes if n.type != "user")
        from kgrec.fusion.whynot import staff_sentence  # the page words paths for staff (issue 18 point 2)
        from kgrec.messages import messages

        for p in e.paths:
            assert escape(staff_sentence(p, rec.config.explain.interaction_verb, messages())) in page.text
        page = c.get(f"/?user={quote(user)}&whynot={quote('鲸鱼')}", headers=AUTH)
        assert page.status_code == 200


# ------------------------------------------------------------------ message catalogues
def test_catalogues_cover_english_and_keep_its_fields() -> None:
    import string

    from kgrec.errors import ConfigError
    from kgrec.messages import CATALOGUES, EN, messages

    for lang, table in CATALOGUES.items():
        assert set(table) <= set(EN), lang
        for key, text in table.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            want = {f for _, f, _, _ in string.Formatter().parse(EN[key]) if f}
            assert fields <= want, (lang, key)  # a translation asks for no field the English one lacks
    assert set(CATALOGUES["zh"]) == set(EN)  # Simplified Chinese is complete
    assert messages("zh")("path.tag", via="海盗", item="《鲸鱼》") == "推荐理由：你给物品加过标签“海盗”，而《鲸鱼》也与“海盗”有关。"
    with pytest.raises(ConfigError, match=r"lang='fr': no message catalogue for it; expected one of \['en', 'zh'\]"):
        messages("fr")


def test_explanations_in_chinese_and_english_by_default(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kgrec.fusion.explanation import sentence

    rec = Recommender.load(store / "models" / "default", store=open_store(store))
    item = rec.recommend("用户1", 1)["item"].iloc[0]
    en, zh = rec.explain("用户1", item), rec.explain("用户1", item, lang="zh")
    assert [p.score for p in en.paths] == [p.score for p in zh.paths] and [p.kind for p in en.paths] == [p.kind for p in zh.paths]
    assert all(p.sentence.startswith("Recommended because") for p in en.paths)
    assert all(p.sentence.startswith("推荐理由：") and rec.title(item) in p.sentence for p in zh.paths)
    assert rec.explain("用户1", item, lang="en").to_dict() == en.to_dict()
    assert sentence("keyword", "rated", "A", "k", "B") == "Recommended because you rated A, which, like B, is about “k”."
    capsys.readouterr()
    assert main(["explain", "--store", str(store), "--user", "用户1", "--item", item, "--format", "json", "--lang", "zh"]) == 0
    assert json.loads(capsys.readouterr().out)["paths"][0]["sentence"] == zh.paths[0].sentence
    assert main(["recommend", "--store", str(store), "--user", "用户1", "--k", "1", "--explain", "--format", "json",
                 "--lang", "zh"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out if isinstance(out, list) else out["items"]
    assert rows[0]["explanation"] == zh.paths[0].sentence
    seen = rec.state.vocabs.item.id(int(rec.state.history(rec.user_number("用户1"))[0][0]))
    assert rec.explain("用户1", seen, lang="zh").message.startswith("用户 用户1 已经选择过")
    out_file = store.parent / "recs-zh.csv"
    assert main(["export", "--store", str(store), "--k", "2", "--explain", "--lang", "zh", "--out", str(out_file)]) == 0
    assert pd.read_csv(out_file)["explanation"].str.startswith("推荐理由：").all()


def test_page_and_api_in_chinese(store: Path) -> None:
    from fastapi.testclient import TestClient

    from kgrec.web import WebConfig, create_app

    rec = Recommender.load(store / "models" / "default", store=open_store(store))
    user = "用户4"
    item = rec.recommend(user, 1)["item"].iloc[0]
    zh = rec.explain(user, item, rec.store, lang="zh", top=5)
    with TestClient(create_app(WebConfig(store=str(store), token=TOKEN))) as c:
        page = c.get(f"/?user={quote(user)}&item={quote(item)}&lang=zh", headers=AUTH)
        assert page.status_code == 200, page.text
        html = page.text
        assert '<html lang="zh-Hans">' in html and "显示推荐" in html and "为什么没有？" in html
        from kgrec.fusion.whynot import staff_sentence  # the page words paths for staff (issue 18 point 2)
        from kgrec.messages import messages

        mz = messages("zh")
        assert escape(staff_sentence(zh.paths[0], mz.verb(rec.config.explain.interaction_verb), mz)) in html
        assert "lang=zh" in html and 'name="lang" value="zh"' in html  # links and forms keep the language
        en = c.get(f"/?user={quote(user)}&item={quote(item)}", headers=AUTH).text
        assert '<html lang="en">' in en and "Show recommendations" in en and "显示推荐" not in en
        r = c.get(f"/api/users/{quote(user, safe='')}/explanations/{quote(item, safe='')}?lang=zh&top=5", headers=AUTH)
        assert r.status_code == 200 and [p["sentence"] for p in r.json()["paths"]] == [p.sentence for p in zh.paths]
        r = c.get(f"/api/users/{quote(user, safe='')}/recommendations?k=1&lang=zh", headers=AUTH)
        assert r.json()["items"][0]["explanation"] == zh.paths[0].sentence
        assert c.get(f"/api/users/{quote(user, safe='')}/recommendations?lang=fr", headers=AUTH).status_code == 422
        assert c.get(f"/?user={quote(user)}&lang=fr", headers=AUTH).status_code == 422
