"""Data sets in, canonical tables out.

- :func:`movielens`: MovieLens latest-small under a ``root`` folder;
- :func:`from_frames` / :func:`load_files`: the bring-your-own format; :func:`read_id_file`: a list of ids;
- :func:`batch_from_frames` / :func:`load_batch_files`: a batch of new rows to append to a store;
  :func:`check_dataset`: the format's limits on a hand-built :class:`Dataset` (for stores);
- :func:`synthetic`: generated data with planted communities;
- :func:`sample_users` / :func:`movielens_sample`: a seeded sample of users (notebooks, quick runs).
"""

from kgrec.loaders.files import load_batch_files, load_files, read_id_file, read_table
from kgrec.loaders.movielens import movielens
from kgrec.loaders.sample import default_data_root, movielens_sample, sample_users
from kgrec.loaders.schema import Dataset
from kgrec.loaders.synthetic import SyntheticConfig, generate_frames, synthetic
from kgrec.loaders.tables import Source, batch_from_frames, check_dataset, from_frames

__all__ = [
    "Dataset",
    "Source",
    "SyntheticConfig",
    "batch_from_frames",
    "check_dataset",
    "default_data_root",
    "from_frames",
    "generate_frames",
    "load_batch_files",
    "load_files",
    "movielens",
    "movielens_sample",
    "read_id_file",
    "read_table",
    "sample_users",
    "synthetic",
]
