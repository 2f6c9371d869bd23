from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """MovieLens root: $KGREC_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("KGREC_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _offline_and_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    # one text-embedding cache per test session: tests never depend on a user's cache
    os.environ.setdefault("KGREC_CACHE", str(tmp_path_factory.mktemp("kgrec-cache")))


@pytest.fixture(scope="session", autouse=True)
def _neo4j_server(request: pytest.FixtureRequest):
    """The real Neo4j server for tests marked ``neo4j``.

    A server that already answers (started by .ci/run or by hand) is used as it is;
    otherwise scripts/neo4j.sh starts one and stops it after the session.
    """
    needed = any(item.get_closest_marker("neo4j") for item in request.session.items)
    started = False
    if needed and "KGREC_TEST_NEO4J_URI" not in os.environ:
        script = REPO / "scripts" / "neo4j.sh"
        if subprocess.run(["bash", str(script), "status"], capture_output=True).returncode != 0:
            subprocess.run(["bash", str(script), "start"], check=True)
            started = True
    yield
    if started:
        subprocess.run(["bash", str(REPO / "scripts" / "neo4j.sh"), "stop"], check=False)


@pytest.fixture(scope="session")
def ml_root() -> Path:
    root = data_root()
    assert (root / "ml-latest-small" / "ratings.csv").is_file(), f"MovieLens latest-small expected under {root}"
    return root


@pytest.fixture(scope="session")
def synth_frames():
    from kgrec.loaders import SyntheticConfig, generate_frames

    return generate_frames(SyntheticConfig(users=160, items=240, communities=4, interactions_per_user=16, seed=1))


@pytest.fixture(scope="session")
def synth_dataset(synth_frames):
    from kgrec.loaders import from_frames

    f = synth_frames
    return from_frames(f["interactions"], f["items"], f["triples"], f["tags"], name="synthetic-test")


@pytest.fixture(scope="session")
def small_config():
    from kgrec.fusion.config import RecommenderConfig

    return RecommenderConfig.model_validate(
        {"model": {"dim": 32}, "train": {"epochs": 30, "batch_size": 256, "lr": 0.01, "patience": 4, "seed": 0}}
    )


@pytest.fixture(scope="session")
def trained(synth_dataset, small_config):
    """A model trained once per session on the synthetic communities (real BERT, real GNN)."""
    from kgrec import Recommender

    return Recommender(small_config).fit(synth_dataset, progress=False)


@pytest.fixture()
def neo4j_left_empty():
    """Leave the test database empty after a test that fills it, as the other Neo4j tests expect."""
    yield
    import kgrec

    with kgrec.open_store(os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")) as st:
        st.wipe()
