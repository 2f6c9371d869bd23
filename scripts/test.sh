#!/usr/bin/env bash
# Run the whole test suite (unit, slow and Neo4j tests). Starts the local Neo4j
# server with scripts/neo4j.sh when none answers, and stops it again afterwards
# if this script started it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export KGREC_DATA=${KGREC_DATA:-$(cd .. && pwd)/shared/data}
export HF_HUB_OFFLINE=1
started=0
if ! bash scripts/neo4j.sh status >/dev/null 2>&1; then
  bash scripts/neo4j.sh start
  started=1
fi
rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [ "$started" = 1 ]; then bash scripts/neo4j.sh stop || true; fi
exit "$rc"
