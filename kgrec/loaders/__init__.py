"""Data sets in, canonical tables out.

- :func:`movielens`: MovieLens latest-small under a ``root`` folder;
- :func:`from_frames` / :func:`load_files`: the bring-your-own format;
- :func:`synthetic`: generated data with planted communities.
"""

from kgrec.loaders.files import load_files, read_table
from kgrec.loaders.movielens import movielens
from kgrec.loaders.schema import Dataset
from kgrec.loaders.synthetic import SyntheticConfig, generate_frames, synthetic
from kgrec.loaders.tables import Source, from_frames

__all__ = [
    "Dataset",
    "Source",
    "SyntheticConfig",
    "from_frames",
    "generate_frames",
    "load_files",
    "movielens",
    "read_table",
    "synthetic",
]
