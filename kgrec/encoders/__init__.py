"""Text (BERT-family) and graph (torch-geometric) encoders."""

from kgrec.encoders.behaviour import item_texts, user_texts
from kgrec.encoders.graph import GraphEncoder, GraphLayout, recency_weights
from kgrec.encoders.text import TextEncoder, TextEncoderConfig, default_model_path

__all__ = [
    "GraphEncoder",
    "GraphLayout",
    "TextEncoder",
    "TextEncoderConfig",
    "default_model_path",
    "item_texts",
    "recency_weights",
    "user_texts",
]
