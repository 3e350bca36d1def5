#!/usr/bin/env bash
# Run a command against a genuine Apache Kafka broker started for it, then stop the broker.
#   tools/kafka/with-kafka.sh pytest -m broker tests/integration
# The command sees BILLSTREAM_TEST_KAFKA_URL=kafka://127.0.0.1:PORT.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v mvn >/dev/null 2>&1; then
  echo "with-kafka: mvn not found; installing Debian's maven" >&2
  (apt-get install -y -q maven || sudo apt-get install -y -q maven) >/dev/null
fi
"$here/kafka.sh" fetch
dir="$(mktemp -d "${TMPDIR:-/tmp}/billstream-kafka.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() { "$here/kafka.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
boot="$("$here/kafka.sh" start "$dir" "$port")"
echo "with-kafka: Apache Kafka ready at $boot" >&2
"${PYTHON:-python3}" "$here/canary.py" "$boot"
BILLSTREAM_TEST_KAFKA_URL="kafka://$boot" "$@"
