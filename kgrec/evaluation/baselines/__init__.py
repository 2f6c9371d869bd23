"""Baselines of the quality benchmark, each with ``fit(FitContext)`` and ``scores(users)``."""

from kgrec.evaluation.baselines.base import FitContext, Scorer
from kgrec.evaluation.baselines.ease import EASE
from kgrec.evaluation.baselines.gru4rec import GRU4Rec
from kgrec.evaluation.baselines.itemknn import ItemKNN
from kgrec.evaluation.baselines.lightgcn import LightGCN
from kgrec.evaluation.baselines.popularity import Popularity
from kgrec.evaluation.baselines.sasrec import SASRec

__all__ = ["EASE", "FitContext", "GRU4Rec", "ItemKNN", "LightGCN", "Popularity", "SASRec", "Scorer"]
