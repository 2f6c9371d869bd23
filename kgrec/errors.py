"""Exceptions raised by kgrec.

Every kgrec error derives from :class:`KgrecError`, so a caller (the CLI, the web
app) can catch one type and show its message. The tree::

    KgrecError
    ├── DataValidationError     bad input data: names the file, row, column, expectation
    ├── DatasetNotFoundError    a data set is neither on disk nor downloadable
    ├── StoreError              the graph store cannot be opened, read or written
    │   └── StoreUnavailableError  the Neo4j server does not answer / refuses credentials
    ├── UnknownIdError          a user or item id that the store/model does not know
    ├── ModelMismatchError      a saved model does not match the store it is used with
    └── ConfigError             a configuration value outside its allowed range
"""

from __future__ import annotations


class KgrecError(Exception):
    """Base class of every error kgrec raises on purpose."""


class DataValidationError(KgrecError, ValueError):
    """Input data that does not follow the documented format."""


class DatasetNotFoundError(KgrecError, FileNotFoundError):
    """A data set that is neither present under its root nor downloadable."""


class StoreError(KgrecError):
    """The graph store cannot be opened, read or written."""


class StoreUnavailableError(StoreError):
    """The store's server does not answer, or refuses the credentials."""


class UnknownIdError(KgrecError, KeyError):
    """A user or item id the store or model does not know."""

    def __init__(self, kind: str, ident: object, hint: str = "") -> None:
        self.kind = kind
        self.ident = ident
        msg = f"unknown {kind} id {ident!r}"
        if hint:
            msg += f": {hint}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ModelMismatchError(KgrecError):
    """A saved model used with a store whose data differ from the training data."""


class ConfigError(KgrecError, ValueError):
    """A configuration value outside its allowed range.

    ``problems`` lists ``(location, text)`` for each bad field (empty when raised by hand).
    """

    problems: list[tuple[tuple[int | str, ...], str]]

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.problems = []
