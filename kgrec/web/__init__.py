"""The web page and JSON API for support staff (``kgrec serve``).

Read-only by design: it loads one model, reads the store, and answers GET requests;
nothing in it runs Cypher from a request or writes data. Only the CLI imports it.
"""

from kgrec.web.app import create_app
from kgrec.web.config import WebConfig
from kgrec.web.service import RecService

__all__ = ["RecService", "WebConfig", "create_app"]
