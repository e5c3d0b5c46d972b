#!/usr/bin/env bash
# Start the local PostgreSQL cluster if it is not answering on 127.0.0.1:5432 (CI machines of this kind
# start it before the session; a stopped one is started here). Tests that need it skip with a reason if it
# still is not there.
set -uo pipefail
answering() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if answering; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
for _ in $(seq 1 30); do answering && exit 0; sleep 1; done
echo "warning: PostgreSQL is not answering on 127.0.0.1:5432; postgres tests will be skipped" >&2
