"""The live CLI end to end: ingest -> train -> ingest --append -> fresh answers -> train --warm-start -> forget."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kgrec.cli import main

pytestmark = pytest.mark.slow


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_append_fresh_answers_warm_start_and_forget(tmp_path: Path, synth_frames, capsys) -> None:
    for name in ("interactions", "items"):
        synth_frames[name].to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"dim": 16}, "train": {"epochs": 6, "lr": 0.01}}))
    store = str(tmp_path / "store")
    rc, _, err = run(capsys, "ingest", "--store", store, "--interactions", str(tmp_path / "interactions.csv"),
                     "--items-file", str(tmp_path / "items.csv"))
    assert rc == 0, err
    rc, _, err = run(capsys, "train", "--store", store, "--config", str(tmp_path / "config.json"))
    assert rc == 0, err
    user = str(synth_frames["interactions"]["user"].iloc[0])
    rc, out, err = run(capsys, "recommend", "--store", store, "--user", user, "--k", "3", "--format", "json")
    assert rc == 0, err
    top = json.loads(out)[0]["item"]
    t = int(pd.to_numeric(synth_frames["interactions"]["timestamp"]).max()) + 60
    pd.DataFrame({"user": [user, "cli-newcomer", "cli-newcomer"], "item": [top, top, "i3"],
                  "timestamp": [t, t, t + 1]}).to_csv(tmp_path / "new.csv", index=False)
    rc, out, err = run(capsys, "ingest", "--append", "--store", store, "--interactions", str(tmp_path / "new.csv"))
    assert rc == 0 and out.startswith("appended: +3 interactions"), (out, err)
    # the trained model answers from the new history at once: the item just taken is seen
    rc, out, err = run(capsys, "recommend", "--store", store, "--user", user, "--k", "3", "--format", "json")
    assert rc == 0, err
    assert top not in [r["item"] for r in json.loads(out)]
    rc, out, err = run(capsys, "recommend", "--store", store, "--user", "cli-newcomer", "--k", "3", "--format", "json")
    assert rc == 0 and len(json.loads(out)) == 3, err
    rc, out, err = run(capsys, "train", "--warm-start", "--store", store)
    assert rc == 0 and out.startswith("warm-started "), (out, err)
    rc, out, err = run(capsys, "forget", "--store", store, "--user", "cli-newcomer")
    assert rc == 0 and "forgot 1 user(s): store rewritten, 1 model(s) rewritten" in out, (out, err)
    rc, out, err = run(capsys, "recommend", "--store", store, "--user", "cli-newcomer", "--k", "3")
    assert rc != 0 and "cli-newcomer" in err
    rc, out, err = run(capsys, "forget", "--store", store, "--user", "cli-newcomer")
    assert rc != 0 and "cli-newcomer" in err  # nobody holds them any more: a clear error, nothing changed
