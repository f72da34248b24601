#!/usr/bin/env bash
# Starts PostgreSQL (127.0.0.1:5432) and NATS with JetStream (127.0.0.1:4222) when they
# are installed but not running. Suites that need them fail with a clear error otherwise.
set -uo pipefail

listening() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! listening 4222; then
  if command -v nats-server >/dev/null 2>&1; then
    echo "starting nats-server on 127.0.0.1:4222"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  else
    echo "warning: NATS is not running and nats-server is not installed" >&2
  fi
fi

if ! listening 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  else
    echo "warning: PostgreSQL is not running and no cluster is installed" >&2
  fi
fi

for _ in $(seq 1 50); do
  listening 4222 && listening 5432 && break
  sleep 0.2
done
exit 0
