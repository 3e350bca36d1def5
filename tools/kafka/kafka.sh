#!/usr/bin/env bash
# Run a genuine Apache Kafka 4.x single-node KRaft broker (combined broker+controller) on loopback.
#
#   kafka.sh fetch              put the broker jars into tools/kafka/target/libs (Maven Central via mvn;
#                               skipped when already there for the same version)
#   kafka.sh start DIR PORT     write DIR/server.properties, format DIR/data once, start the broker in the
#                               background (PID in DIR/kafka.pid, output in DIR/kafka.log), wait until
#                               127.0.0.1:PORT answers Metadata and ListGroups (KAFKA_START_TIMEOUT, 90 s);
#                               prints HOST:PORT (the bootstrap address) on stdout
#   kafka.sh stop DIR           SIGTERM the broker, wait up to 30 s, then SIGKILL; removes only DIR/kafka.pid
#   kafka.sh status DIR         exit 0 if the broker of DIR is running and answers on its port
#
# Environment (all optional):
#   KAFKA_VERSION          4.x version to fetch/run            (default 4.4.0)
#   KAFKA_CONTROLLER_PORT  loopback port of the KRaft controller listener (default: the one already in
#                          DIR/server.properties, else a free port picked at first start)
#   KAFKA_HEAP_OPTS        (default -Xmx512m -Xms128m)
#   KAFKA_JVM_OPTS         extra JVM options
#   KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   JAVA                   java binary (default $JAVA_HOME/bin/java, else java on PATH); needs Java 17+
#
# Needs bash, python3 (stdlib only: free-port pick and the Metadata readiness probe), Java 17+, and mvn for fetch.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
LIBS="$HERE/target/libs"
HOST=127.0.0.1

die() { echo "kafka.sh: $*" >&2; exit 1; }
log() { echo "kafka.sh: $*" >&2; }

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2
  exit 2
}

java_bin() {
  local j="${JAVA:-}"
  if [[ -z "$j" && -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then j="${JAVA_HOME}/bin/java"; fi
  [[ -n "$j" ]] || j="$(command -v java || true)"
  [[ -n "$j" ]] || die "no java found (set JAVA or JAVA_HOME; Java 17+ is needed)"
  local major
  major="$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)"
  [[ "$major" =~ ^[0-9]+$ ]] || die "cannot read the version of $j"
  (( major >= 17 )) || die "$j is Java $major; Kafka 4 needs Java 17+"
  echo "$j"
}

# ---------------------------------------------------------------------------------------------- fetch
cmd_fetch() {
  if [[ -f "$LIBS/.fetched" && "$(cat "$LIBS/.fetched")" == "$KAFKA_VERSION" \
        && -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
    log "jars for Kafka $KAFKA_VERSION already in $LIBS"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$HERE/target"
  local tmp
  tmp="$(mktemp -d "$HERE/target/libs.tmp.XXXXXX")"
  log "fetching Kafka $KAFKA_VERSION jars with mvn into $LIBS"
  # Offline first (everything cached in ~/.m2: no network at all), then online.
  # mvn output goes to a file (Debian's Maven 3.8 prints ANSI resets even with -q) and is shown on failure.
  local -a mvn_args=(-q -B -f "$HERE/pom.xml" -Dkafka.version="$KAFKA_VERSION"
                     dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp")
  if ! mvn -o "${mvn_args[@]}" > "$HERE/target/mvn-fetch.log" 2>&1 \
     && ! mvn "${mvn_args[@]}" > "$HERE/target/mvn-fetch.log" 2>&1; then
    cat "$HERE/target/mvn-fetch.log" >&2
    rm -rf "$tmp"
    die "mvn could not fetch Kafka $KAFKA_VERSION"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
  echo "$KAFKA_VERSION" > "$tmp/.fetched"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  log "$(find "$LIBS" -name '*.jar' | wc -l) jars in $LIBS"
}

# ------------------------------------------------------------------------------------------- helpers
# PID from DIR/kafka.pid if that process is alive (not a zombie) and is a kafka.Kafka JVM; else empty.
running_pid() {
  local dir="$1" pid state
  [[ -f "$dir/kafka.pid" ]] || return 0
  pid="$(tr -dc '0-9' < "$dir/kafka.pid")"
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 0
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [[ "$state" != "Z" && -n "$state" ]] || return 0
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 0
  echo "$pid"
}

alive() { # PID -> exit 0 while the process exists and is not a zombie
  local state
  [[ -d "/proc/$1" ]] || return 1
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != "Z" ]]
}

prop() { # FILE KEY -> value or empty
  [[ -f "$1" ]] || return 0
  sed -n "s/^$2=//p" "$1" | tail -n1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_busy() { # PORT -> exit 0 if something on 127.0.0.1:PORT accepts connections
  python3 - "$HOST" "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# Readiness probe, one connection to HOST:PORT:
#  1. Metadata v4 (all topics) must list a broker on HOST:PORT;
#  2. ListGroups v1 must answer error 0, i.e. the group coordinator has finished loading
#     __consumer_offsets (after a restart it answers COORDINATOR_LOAD_IN_PROGRESS for a moment).
probe() { # PORT
  python3 - "$HOST" "$1" <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
client = b"kafka.sh-probe"

def request(sock, api_key, version, corr, body):
    req = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(req)) + req)
    def recv(n):
        b = b""
        while len(b) < n:
            c = sock.recv(n - len(b))
            if not c:
                raise OSError("connection closed")
            b += c
        return b
    (size,) = struct.unpack(">i", recv(4))
    data = recv(size)
    (got,) = struct.unpack_from(">i", data, 0)
    if got != corr:
        raise OSError("bad correlation id")
    return data, 4

try:
    with socket.create_connection((host, port), timeout=3) as s:
        # Metadata v4: topics=null (all), allow_auto_topic_creation=false
        data, off = request(s, 3, 4, 1, struct.pack(">i?", -1, False))
        _throttle, nbrokers = struct.unpack_from(">ii", data, off); off += 8
        brokers = []
        for _ in range(nbrokers):
            (node,) = struct.unpack_from(">i", data, off); off += 4
            (hl,) = struct.unpack_from(">h", data, off); off += 2
            bhost = data[off:off + hl].decode(); off += hl
            (bport,) = struct.unpack_from(">i", data, off); off += 4
            (rl,) = struct.unpack_from(">h", data, off); off += 2 + max(rl, 0)
            brokers.append((node, bhost, bport))
        if not any(p == port for _, _, p in brokers):
            sys.exit(1)
        # ListGroups v1: empty body -> throttle_time_ms, error_code, groups
        data, off = request(s, 16, 1, 2, b"")
        _throttle, err = struct.unpack_from(">ih", data, off)
        if err != 0:
            sys.exit(1)
    print(f"ready: brokers={brokers}")
except (OSError, struct.error, UnicodeDecodeError):
    sys.exit(1)
PY
}

abs_dir() { mkdir -p "$1" && cd "$1" && pwd; }

# ---------------------------------------------------------------------------------------------- start
write_config() { # DIR PORT CPORT
  local dir="$1" port="$2" cport="$3"
  cat > "$dir/server.properties.tmp" <<EOF
# Written by tools/kafka/kafka.sh: single-node KRaft (combined broker + controller), loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$cport
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport
advertised.listeners=PLAINTEXT://$HOST:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Fewer internal partitions than the default 50: a faster first group join / first transaction
# and a faster restart (fewer logs to load) on a single test node.
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
share.coordinator.state.topic.num.partitions=4
EOF
  mv "$dir/server.properties.tmp" "$dir/server.properties"

  cat > "$dir/log4j2.properties" <<'EOF'
# Written by tools/kafka/kafka.sh: everything to stdout (redirected to kafka.log).
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
}

wait_ready() { # DIR PORT PID START_EPOCH
  local dir="$1" port="$2" pid="$3" t0="$4" timeout="${KAFKA_START_TIMEOUT:-90}"
  local deadline=$(( t0 + timeout ))
  while :; do
    if ! alive "$pid"; then
      log "broker (pid $pid) exited during start-up; last lines of $dir/kafka.log:"
      tail -n 60 "$dir/kafka.log" >&2 || true
      rm -f "$dir/kafka.pid"
      return 1
    fi
    if probe "$port" >/dev/null; then
      return 0
    fi
    if (( $(date +%s) >= deadline )); then
      log "broker (pid $pid) not ready on $HOST:$port after ${timeout}s; last lines of $dir/kafka.log:"
      tail -n 60 "$dir/kafka.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

cmd_start() {
  [[ $# -eq 2 ]] || usage
  local dir port cport pid java t0 t1
  [[ "$2" =~ ^[0-9]+$ ]] && (( $2 > 0 && $2 < 65536 )) || die "bad port: $2"
  port="$2"
  dir="$(abs_dir "$1")"

  pid="$(running_pid "$dir")"
  if [[ -n "$pid" ]]; then
    [[ "$(prop "$dir/server.properties" advertised.listeners)" == "PLAINTEXT://$HOST:$port" ]] \
      || die "a broker (pid $pid) already runs from $dir on another port; stop it first"
    log "broker already running from $dir (pid $pid); checking it answers on $HOST:$port"
    wait_ready "$dir" "$port" "$pid" "$(date +%s)" || exit 1
    echo "$HOST:$port"
    return 0
  fi

  port_busy "$port" && die "$HOST:$port is already in use by another process"

  cmd_fetch
  java="$(java_bin)"

  # Keep the controller port across restarts of the same DIR (unless overridden).
  cport="${KAFKA_CONTROLLER_PORT:-}"
  if [[ -z "$cport" ]]; then
    cport="$(prop "$dir/server.properties" controller.quorum.voters | sed -n 's/.*:\([0-9]*\)$/\1/p')"
  fi
  if [[ -z "$cport" || "$cport" == "$port" ]] || port_busy "$cport"; then
    cport="$(free_port)"
    [[ "$cport" != "$port" ]] || cport="$(free_port)"
  fi

  mkdir -p "$dir/data"
  write_config "$dir" "$port" "$cport"

  local -a jvm
  # shellcheck disable=SC2206 # word splitting of the option strings is intended
  jvm=(${KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}
       -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
       -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
       -Dlog4j2.configurationFile="$dir/log4j2.properties"
       ${KAFKA_JVM_OPTS:-})

  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cluster_id
    # A Kafka Uuid is 16 random bytes in URL-safe base64 without padding (22 chars). One
    # that starts with "-" reads as an option to StorageTool (CI met "-Re6--6Hk..."), which
    # is why Kafka's own random ids never start with one: draw again.
    cluster_id="-"
    while [[ "$cluster_id" == -* ]]; do
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    log "formatting $dir/data (cluster id $cluster_id)"
    if ! "$java" "${jvm[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
           --ignore-formatted --cluster-id "$cluster_id" --config "$dir/server.properties" \
           >> "$dir/kafka.log" 2>&1; then
      tail -n 30 "$dir/kafka.log" >&2 || true
      die "storage format failed"
    fi
  fi

  t0="$(date +%s)"
  local t0ns; t0ns="$(date +%s%N)"
  echo "==== $(date -u +%FT%TZ) kafka.sh start: Kafka $KAFKA_VERSION on $HOST:$port (controller $HOST:$cport)" >> "$dir/kafka.log"
  # setsid: the broker gets its own session, so a Ctrl-C/SIGHUP aimed at the caller does not reach it.
  (cd "$dir" && exec setsid "$java" "${jvm[@]}" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
      >> "$dir/kafka.log" 2>&1 < /dev/null) &
  pid=$!
  echo "$pid" > "$dir/kafka.pid"

  if ! wait_ready "$dir" "$port" "$pid" "$t0"; then
    if alive "$pid"; then
      log "stopping the broker that did not become ready"
      cmd_stop "$dir" >/dev/null 2>&1 || true
    fi
    exit 1
  fi
  t1="$(date +%s%N)"
  log "Kafka $KAFKA_VERSION ready on $HOST:$port (pid $pid) in $(( (t1 - t0ns) / 1000000 )) ms"
  echo "$HOST:$port"
}

# ----------------------------------------------------------------------------------------------- stop
cmd_stop() {
  [[ $# -eq 1 ]] || usage
  local dir="$1" pid i
  [[ -d "$dir" ]] || { log "$dir does not exist; nothing to stop"; return 0; }
  if [[ ! -f "$dir/kafka.pid" ]]; then
    log "no $dir/kafka.pid; nothing to stop"
    return 0
  fi
  pid="$(running_pid "$dir")"
  if [[ -z "$pid" ]]; then
    log "broker of $dir is not running (stale pid file removed)"
    rm -f "$dir/kafka.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < 300; i++ )); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "broker (pid $pid) still alive after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for (( i = 0; i < 50; i++ )); do alive "$pid" || break; sleep 0.1; done
  fi
  alive "$pid" && die "could not stop pid $pid"
  rm -f "$dir/kafka.pid"
  log "broker (pid $pid) stopped"
}

# --------------------------------------------------------------------------------------------- status
cmd_status() {
  [[ $# -eq 1 ]] || usage
  local dir="$1" pid port
  pid="$(running_pid "$dir")"
  [[ -n "$pid" ]] || { echo "not running"; return 1; }
  port="$(prop "$dir/server.properties" advertised.listeners | sed -n 's/.*:\([0-9]*\)$/\1/p')"
  if probe "$port" >/dev/null; then
    echo "running pid=$pid bootstrap=$HOST:$port"
  else
    echo "pid $pid alive but $HOST:$port is not ready (no metadata / group coordinator loading)"
    return 1
  fi
}

case "${1:-}" in
  fetch)  shift; [[ $# -eq 0 ]] || usage; cmd_fetch ;;
  start)  shift; cmd_start "$@" ;;
  stop)   shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) usage ;;
esac
