#!/usr/bin/env bash
# Run a real Neo4j Community 5.26 server built from Maven Central jars (no tarball, no docker).
#
#   bash scripts/neo4j.sh start|stop|status|restart|wipe
#
# Layout (all under the git-ignored home, default <repo>/.neo4j, override with KGREC_NEO4J_HOME):
#   lib/        runtime closure of org.neo4j:neo4j (tools/neo4j-server/pom.xml), + lib/.kgrec-stamp
#   conf/       neo4j.conf, user-logs.xml, server-logs.xml (rewritten on every start)
#   data/       databases + transaction logs (removed by `wipe`)
#   logs/       console.out, neo4j.log, debug.log, query.log, security.log
#   run/        launcher.pid
#   password    the `neo4j` user's password (mode 600); user name is always `neo4j`
#
# Environment:
#   KGREC_NEO4J_HOME       home folder (default <repo>/.neo4j)
#   KGREC_NEO4J_BOLT_PORT  Bolt port on 127.0.0.1 (default 7687)
#   KGREC_NEO4J_JAVA       java executable (default `java` on PATH; must be JDK 17 or 21)
#   KGREC_PYTHON           python used for readiness checks (default: <repo>/.venv/bin/python if it
#                          can import the `neo4j` driver, else python3; without the driver the check
#                          is "Started." in logs/console.out + a raw Bolt handshake)
#   NEO4J_PASSWORD         password to set when the system database is first created
#                          (otherwise .neo4j/password is reused, or a random one is generated)
#
# Exit codes: 0 ok; 1 failure; 2 usage; status: 3 = not running.
# See docs/neo4j-server.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/tools/neo4j-server/pom.xml"
H="${KGREC_NEO4J_HOME:-$ROOT/.neo4j}"
mkdir -p "$H"
H="$(cd "$H" && pwd)"
PORT="${KGREC_NEO4J_BOLT_PORT:-7687}"
JAVA="${KGREC_NEO4J_JAVA:-java}"
# Python for the readiness probe: KGREC_PYTHON, else the repo venv if it has the driver, else python3.
if [ -n "${KGREC_PYTHON:-}" ]; then
  PY="$KGREC_PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c 'import neo4j' 2>/dev/null; then
  PY="$ROOT/.venv/bin/python"
else
  PY=python3
fi
URI="bolt://127.0.0.1:$PORT"
START_TIMEOUT=180
STOP_TIMEOUT=60
PIDFILE="$H/run/launcher.pid"
PWFILE="$H/password"
LAUNCHER_CLASS=org.neo4j.server.startup.Neo4jCommand
# set-initial-password runs org.neo4j.cli.AdminTool directly (what neo4j-admin's bootloader,
# org.neo4j.server.startup.Neo4jAdminCommand, forks anyway): one JVM, ~1.5 s instead of ~3.6 s.
ADMIN_CLASS=org.neo4j.cli.AdminTool
# Single source of truth for the version: the POM.
NEO4J_VERSION="$(sed -n 's|.*<neo4j.version>\(.*\)</neo4j.version>.*|\1|p' "$POM" | head -n1)"

log() { printf 'neo4j.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$PORT" in '' | *[!0-9]*) die "KGREC_NEO4J_BOLT_PORT must be a number, got '$PORT'" ;; esac
[ -n "$NEO4J_VERSION" ] || die "could not read <neo4j.version> from $POM"

# --------------------------------------------------------------------------------------------
# Bolt probe (python). Modes:
#   handshake              -> 0 if a Bolt server answers the version handshake on the port
#   tcp                    -> 0 if anything accepts a TCP connection on the port
#   query                  -> 0 if `RETURN 1` on database neo4j succeeds (driver required);
#                             4 if the server answered but authentication failed
#   wait <pid> <timeout>   -> like query (or, without driver, "Started." in the logs + handshake),
#                             polling every 0.5 s; 2 if process group <pid> died, 1 on timeout
# Password comes in via env _KGREC_NEO4J_PW, never on a command line.
# --------------------------------------------------------------------------------------------
PROBE_PY='
import os, socket, sys, time

mode, port = sys.argv[1], int(sys.argv[2])
uri = "bolt://127.0.0.1:%d" % port
home = os.environ["_KGREC_NEO4J_HOME"]
pw = os.environ.get("_KGREC_NEO4J_PW", "")
GraphDatabase = AuthError = None

def load_driver():  # lazy: importing the driver costs ~0.3 s, handshake/tcp do not need it
    global GraphDatabase, AuthError
    try:
        import logging
        logging.getLogger("neo4j").setLevel(logging.CRITICAL)
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError
        return True
    except Exception:
        return False

def handshake():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(3)
            # magic + 4 proposals: 5.8 (range 8 -> 5.0..5.8), 4.4, none, none
            s.sendall(bytes.fromhex("6060B017" "00080805" "00000404" "00000000" "00000000"))
            buf = b""
            while len(buf) < 4:
                chunk = s.recv(4 - len(buf))
                if not chunk:
                    return False
                buf += chunk
            return buf != b"\x00\x00\x00\x00"
    except OSError:
        return False

def query():
    # session.run, not execute_query: no driver-side retries/back-off, one attempt per poll
    try:
        with GraphDatabase.driver(uri, auth=("neo4j", pw), connection_timeout=3,
                                  connection_acquisition_timeout=5) as d:
            with d.session(database="neo4j") as s:
                rec = s.run("RETURN 1 AS ok").single()
            return 0 if rec is not None and rec["ok"] == 1 else 1
    except AuthError:
        return 4
    except Exception:
        return 1

def started_in_logs():
    # console.out is truncated by every start; neo4j.log keeps "Started." lines of earlier runs
    try:
        with open(os.path.join(home, "logs", "console.out"), "rb") as f:
            return b"Started." in f.read()
    except OSError:
        return False

def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

if mode == "have-driver":
    sys.exit(0 if load_driver() else 1)
if mode == "handshake":
    sys.exit(0 if handshake() else 1)
if mode == "tcp":
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        sys.exit(0)
    except OSError:
        sys.exit(1)
if mode == "query":
    if not load_driver():
        sys.exit(5)
    sys.exit(query())
if mode == "wait":
    pgid, timeout = int(sys.argv[3]), float(sys.argv[4])
    HAVE_DRIVER = load_driver()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            sys.exit(2)
        if HAVE_DRIVER:
            if handshake():
                rc = query()
                if rc in (0, 4):
                    sys.exit(rc)
        elif started_in_logs() and handshake():
            sys.exit(0)
        time.sleep(0.5)
    sys.exit(1)
sys.exit(64)
'

probe() { # probe <mode> [args...]
  _KGREC_NEO4J_HOME="$H" _KGREC_NEO4J_PW="$(cat "$PWFILE" 2>/dev/null || true)" \
    "$PY" -c "$PROBE_PY" "$1" "$PORT" "${@:2}"
}

have_driver() { probe have-driver 2>/dev/null; }

# --------------------------------------------------------------------------------------------
# process group helpers
# --------------------------------------------------------------------------------------------
read_pgid() { # prints our process group if it still runs a Neo4j JVM of this home
  # run/launcher.pid holds the pgid (written by us); run/neo4j.pid (written by Neo4j's console
  # mode) holds the server JVM's pid and is a fallback if launcher.pid got lost.
  local pgid p f c
  for f in "$PIDFILE" "$H/run/neo4j.pid"; do
    [ -f "$f" ] || continue
    pgid="$(tr -dc '0-9' <"$f")"
    [ -n "$pgid" ] || continue
    [ "$f" = "$PIDFILE" ] || pgid="$(ps -o pgid= -p "$pgid" 2>/dev/null | tr -d ' ' || true)"
    [ -n "$pgid" ] || continue
    for p in $(pgrep -g "$pgid" 2>/dev/null || true); do
      c="$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)"
      if [[ "$c" == *org.neo4j.server* && "$c" == *"$H/"* ]]; then
        echo "$pgid"
        return 0
      fi
    done
  done
  return 1
}

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

tail_logs() {
  # console.out already carries everything neo4j.log has for this run (console appender)
  local f
  for f in "$H/logs/console.out" "$H/logs/debug.log"; do
    if [ -s "$f" ]; then
      printf '\n----- tail -n 40 %s -----\n' "$f" >&2
      tail -n 40 "$f" >&2 || true
    fi
  done
}

# --------------------------------------------------------------------------------------------
# jars
# --------------------------------------------------------------------------------------------
ensure_lib() {
  local stamp want
  stamp="$H/lib/.kgrec-stamp"
  want="org.neo4j:neo4j:$NEO4J_VERSION pom-sha256=$(sha256sum "$POM" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found on PATH (needed once to fetch the Neo4j jars)"
  log "resolving Neo4j $NEO4J_VERSION jars from Maven Central into $H/lib (one-off) ..."
  rm -rf "$H/lib.partial"
  if ! mvn -B -q -Dstyle.color=never -f "$POM" -Dneo4j.home="$H" -Dneo4j.lib.dir="$H/lib.partial" package \
    >"$H/logs/mvn.log" 2>&1 </dev/null; then
    sed 's/\x1b\[[0-9;]*m//g' "$H/logs/mvn.log" | tail -n 40 >&2
    rm -rf "$H/lib.partial"
    die "mvn failed to resolve org.neo4j:neo4j:$NEO4J_VERSION (full output: $H/logs/mvn.log)"
  fi
  [ -f "$H/lib.partial/org.neo4j.neo4j-$NEO4J_VERSION.jar" ] ||
    die "mvn finished but $H/lib.partial has no org.neo4j.neo4j-$NEO4J_VERSION.jar"
  printf '%s\n' "$want" >"$H/lib.partial/.kgrec-stamp"
  rm -rf "${H:?}/lib"
  mv "$H/lib.partial" "$H/lib"
  log "$(find "$H/lib" -name '*.jar' | wc -l) jars, $(du -sh "$H/lib" | cut -f1) in $H/lib"
}

# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------
write_conf() {
  mkdir -p "$H/conf" "$H/data" "$H/logs" "$H/run" "$H/import" "$H/plugins"
  # Strict validation is on (default): only valid 5.26 keys, no inline comments.
  cat >"$H/conf/neo4j.conf" <<EOF
# Generated by scripts/neo4j.sh on every start; edits are overwritten.
server.default_listen_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:$PORT
server.bolt.advertised_address=127.0.0.1:$PORT
server.http.enabled=false
server.https.enabled=false
server.directories.data=$H/data
server.directories.logs=$H/logs
server.directories.plugins=$H/plugins
server.directories.run=$H/run
server.directories.import=$H/import
server.directories.lib=$H/lib
server.logs.config=$H/conf/server-logs.xml
server.logs.user.config=$H/conf/user-logs.xml
dbms.security.auth_enabled=true
dbms.usage_report.enabled=false
server.memory.heap.initial_size=512m
server.memory.heap.max_size=1g
server.memory.pagecache.size=256m
db.tx_log.rotation.retention_policy=2 files
server.jvm.additional=-XX:+UseG1GC
server.jvm.additional=-XX:-OmitStackTraceInFastThrow
server.jvm.additional=-XX:+UnlockExperimentalVMOptions
server.jvm.additional=-XX:+TrustFinalNonStaticFields
server.jvm.additional=-XX:+DisableExplicitGC
server.jvm.additional=-Djdk.nio.maxCachedBufferSize=1024
server.jvm.additional=-Dio.netty.tryReflectionSetAccessible=true
server.jvm.additional=-Djdk.tls.ephemeralDHKeySize=2048
server.jvm.additional=-Djdk.tls.rejectClientInitiatedRenegotiation=true
server.jvm.additional=--add-opens=java.base/java.nio=ALL-UNNAMED
server.jvm.additional=--add-opens=java.base/java.io=ALL-UNNAMED
server.jvm.additional=--add-opens=java.base/sun.nio.ch=ALL-UNNAMED
server.jvm.additional=--enable-native-access=ALL-UNNAMED
server.jvm.additional=-Dlog4j2.disable.jmx=true
server.jvm.additional=-Dlog4j.layout.jsonTemplate.maxStringLength=32768
EOF

  # User log (neo4j.log); the Console appender is only used in console mode -> logs/console.out.
  cat >"$H/conf/user-logs.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/neo4j.sh. -->
<Configuration status="ERROR" packages="org.neo4j.logging.log4j">
  <Appenders>
    <RollingRandomAccessFile name="Neo4jLog" fileName="${config:server.directories.logs}/neo4j.log"
                             filePattern="$${config:server.directories.logs}/neo4j.log.%02i">
      <Neo4jDebugLogLayout pattern="%d{yyyy-MM-dd HH:mm:ss.SSSZ}{GMT+0} %-5p %m%n"/>
      <Policies>
        <SizeBasedTriggeringPolicy size="20 MB"/>
      </Policies>
      <DefaultRolloverStrategy fileIndex="min" max="3"/>
    </RollingRandomAccessFile>
    <Console name="ConsoleAppender" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{yyyy-MM-dd HH:mm:ss.SSSZ}{GMT+0} %-5p %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO">
      <AppenderRef ref="Neo4jLog"/>
      <AppenderRef ref="ConsoleAppender"/>
    </Root>
  </Loggers>
</Configuration>
EOF

  # Server logs: debug.log (root), query.log, security.log; HTTP is off so no http.log.
  cat >"$H/conf/server-logs.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/neo4j.sh. -->
<Configuration status="ERROR" packages="org.neo4j.logging.log4j">
  <Appenders>
    <RollingRandomAccessFile name="DebugLog" fileName="${config:server.directories.logs}/debug.log"
                             filePattern="$${config:server.directories.logs}/debug.log.%02i">
      <Neo4jDebugLogLayout pattern="%d{yyyy-MM-dd HH:mm:ss.SSSZ}{GMT+0} %-5p [%c{1.}] %m%n"/>
      <Policies>
        <SizeBasedTriggeringPolicy size="20 MB"/>
      </Policies>
      <DefaultRolloverStrategy fileIndex="min" max="3"/>
    </RollingRandomAccessFile>
    <RollingRandomAccessFile name="QueryLog" fileName="${config:server.directories.logs}/query.log"
                             filePattern="$${config:server.directories.logs}/query.log.%02i">
      <PatternLayout pattern="%d{yyyy-MM-dd HH:mm:ss.SSSZ}{GMT+0} %-5p %m%n"/>
      <Policies>
        <SizeBasedTriggeringPolicy size="20 MB"/>
      </Policies>
      <DefaultRolloverStrategy fileIndex="min" max="3"/>
    </RollingRandomAccessFile>
    <RollingRandomAccessFile name="SecurityLog" fileName="${config:server.directories.logs}/security.log"
                             filePattern="$${config:server.directories.logs}/security.log.%02i">
      <PatternLayout pattern="%d{yyyy-MM-dd HH:mm:ss.SSSZ}{GMT+0} %-5p %m%n"/>
      <Policies>
        <SizeBasedTriggeringPolicy size="20 MB"/>
      </Policies>
      <DefaultRolloverStrategy fileIndex="min" max="3"/>
    </RollingRandomAccessFile>
  </Appenders>
  <Loggers>
    <Root level="INFO">
      <AppenderRef ref="DebugLog"/>
    </Root>
    <Logger name="QueryLogger" level="INFO" additivity="false">
      <AppenderRef ref="QueryLog"/>
    </Logger>
    <Logger name="SecurityLogger" level="INFO" additivity="false">
      <AppenderRef ref="SecurityLog"/>
    </Logger>
  </Loggers>
</Configuration>
EOF
}

# --------------------------------------------------------------------------------------------
# password
# --------------------------------------------------------------------------------------------
ensure_password() {
  # The password only needs to be *set* when the system database does not exist yet.
  if [ -d "$H/data/databases/system" ]; then
    [ -s "$PWFILE" ] || log "warning: system database exists but $PWFILE is missing; clients will not know the password (run 'wipe' to reset)"
    return 0
  fi
  if [ -n "${NEO4J_PASSWORD:-}" ]; then
    (umask 077 && printf '%s\n' "$NEO4J_PASSWORD" >"$PWFILE")
    log "using NEO4J_PASSWORD as the initial password; stored in $PWFILE (mode 600)"
  elif [ -s "$PWFILE" ]; then
    log "re-using the password stored in $PWFILE for the new system database"
  else
    # 24 alphanumerics (~143 bits): no leading '-' or '@' that the admin CLI could misparse.
    (umask 077 && python3 -c 'import secrets,string;a=string.ascii_letters+string.digits;print("".join(secrets.choice(a) for _ in range(24)))' >"$PWFILE")
    log "generated a random password for user 'neo4j'; stored in $PWFILE (mode 600)"
  fi
  chmod 600 "$PWFILE"
  # Pass the password through a picocli @-file (AdminTool expands it) so it never shows in `ps`.
  local argfile rc=0
  argfile="$(umask 077 && mktemp "$H/run/initpw.XXXXXX")"
  # picocli @-file syntax: `--` ends options (a password may start with '-'), then one quoted token.
  printf -- '--\n"%s"\n' "$(head -n1 "$PWFILE" | sed 's/\\/\\\\/g; s/"/\\"/g')" >"$argfile"
  NEO4J_HOME="$H" NEO4J_CONF="$H/conf" \
    "$JAVA" -Xmx256m -cp "$H/lib/*" "$ADMIN_CLASS" dbms set-initial-password "@$argfile" \
    >"$H/logs/set-initial-password.out" 2>&1 </dev/null || rc=$?
  rm -f "$argfile"
  if [ "$rc" -ne 0 ]; then
    cat "$H/logs/set-initial-password.out" >&2
    die "set-initial-password failed (exit $rc)"
  fi
}

check_java() {
  command -v "$JAVA" >/dev/null || die "java not found ('$JAVA'); install JDK 17 or set KGREC_NEO4J_JAVA"
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  case "$v" in
    17 | 21) ;;
    *) log "warning: java $v is not supported by Neo4j 5.26 (use 17 or 21)" ;;
  esac
}

# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
cmd_start() {
  local pg=""
  if probe handshake; then
    if pg="$(read_pgid)"; then
      log "already running (process group $pg) on $URI"
    else
      log "a Bolt server already answers on $URI (not started by this script from $H); leaving it alone"
    fi
    return 0
  fi
  if pg="$(read_pgid)"; then
    # Our process group is alive but Bolt does not answer: still starting, or wedged.
    log "a server from $H is running (process group $pg) but Bolt is not answering yet; waiting"
  else
    if probe tcp; then
      die "127.0.0.1:$PORT is taken by something that is not a Bolt server; free it or set KGREC_NEO4J_BOLT_PORT"
    fi
    check_java
    ensure_lib
    write_conf
    rm -f "$PIDFILE"
    ensure_password
    : >"$H/logs/console.out"
    log "starting Neo4j $NEO4J_VERSION on $URI (home $H)"
    # Own session/process group (setsid); fd 9 (the lock) is closed for the server.
    # HEAP_SIZE / JAVA_OPTS would override neo4j.conf in the bootloader, so drop them.
    env -u HEAP_SIZE -u JAVA_OPTS NEO4J_HOME="$H" NEO4J_CONF="$H/conf" \
      setsid "$JAVA" -Xmx128m -cp "$H/lib/*" "$LAUNCHER_CLASS" console \
      >"$H/logs/console.out" 2>&1 </dev/null 9>&- &
    local lpid=$!
    # setsid does not fork here (a background job is not a group leader), so pid == pgid;
    # read the real pgid anyway.
    sleep 0.2
    pg="$(ps -o pgid= -p "$lpid" 2>/dev/null | tr -d ' ' || true)"
    [ -n "$pg" ] || pg="$lpid"
    echo "$pg" >"$PIDFILE"
  fi
  local t0 rc=0
  t0=$(date +%s)
  if ! have_driver; then
    log "python driver 'neo4j' not importable with '$PY'; readiness = 'Started.' in the log + Bolt handshake"
  fi
  probe wait "$pg" "$START_TIMEOUT" || rc=$?
  case "$rc" in
    0) log "Neo4j is up on $URI after $(($(date +%s) - t0))s (user neo4j, password in $PWFILE)" ;;
    4)
      log "Neo4j is up on $URI but authentication with the password in $PWFILE failed"
      log "(the data folder was initialised with another password; 'bash scripts/neo4j.sh wipe' resets it)"
      exit 1
      ;;
    2)
      log "the Neo4j process exited during start-up"
      tail_logs
      rm -f "$PIDFILE"
      exit 1
      ;;
    *)
      log "Neo4j did not answer on $URI within ${START_TIMEOUT}s"
      tail_logs
      exit 1
      ;;
  esac
}

cmd_stop() {
  local pg
  if ! pg="$(read_pgid)"; then
    rm -f "$PIDFILE"
    if probe handshake; then
      log "not started from $H, but a Bolt server answers on $URI; not touching it"
    else
      log "not running"
    fi
    return 0
  fi
  log "stopping Neo4j (process group $pg) ..."
  kill -TERM -- "-$pg" 2>/dev/null || true
  local i
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    group_alive "$pg" || break
    sleep 0.2
  done
  if group_alive "$pg"; then
    log "still running after ${STOP_TIMEOUT}s; sending SIGKILL to process group $pg"
    kill -KILL -- "-$pg" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      group_alive "$pg" || break
      sleep 0.2
    done
  fi
  rm -f "$PIDFILE" "$H/run/neo4j.pid"
  log "stopped"
}

cmd_status() {
  if probe handshake; then
    local rc=0 extra=""
    probe query || rc=$?
    case "$rc" in
      0) extra=" (query ok)" ;;
      4) extra=" (but the password in $PWFILE is rejected)" ;;
      5) extra=" (driver not available; Bolt handshake only)" ;;
      *) extra=" (Bolt handshake ok; query did not succeed yet)" ;;
    esac
    echo "running: $URI$extra"
    return 0
  fi
  local pg
  if pg="$(read_pgid)"; then
    echo "not running: process group $pg exists but Bolt does not answer on $URI (starting or wedged)"
  else
    echo "not running"
  fi
  return 3
}

cmd_wipe() {
  cmd_stop
  rm -rf "${H:?}/data"
  log "deleted $H/data (the next start re-creates the databases and sets the password again)"
}

usage() {
  echo "usage: $0 start|stop|status|restart|wipe" >&2
  exit 2
}

[ $# -eq 1 ] || usage
mkdir -p "$H/run" "$H/logs"
exec 9>"$H/run/.lock"
case "$1" in
  start | stop | restart | wipe)
    flock -w 300 9 || die "another scripts/neo4j.sh is busy with $H (lock $H/run/.lock)"
    ;;
esac
case "$1" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop && cmd_start ;;
  wipe) cmd_wipe ;;
  *) usage ;;
esac
