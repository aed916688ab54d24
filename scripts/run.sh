#!/usr/bin/env bash
# `make run`: start coursed with its SQLite store under ./var, app on :8080, admin on :9090.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
cat <<'MSG'
coursed is starting: app on http://localhost:8080, admin on http://localhost:9090
Try it from another terminal:
  curl -s localhost:8080/v1/courses
  curl -s localhost:8080/v1/courses/5
  curl -si -X POST localhost:8080/v1/courses/5/enrollments \
       -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' -d '{"student":"ada"}'
  curl -s localhost:9090/readyz
  curl -s -XPUT localhost:9090/debug/loglevel -d debug
Admin changes (PUT /debug/loglevel) need NO token here: this local demo runs with
admin.allow_unauthenticated=true. A deployment sets admin.token_file instead.
Stop with Ctrl-C (a graceful drain: readiness turns 503 first).
MSG
exec build/coursed serve --data-dir ./var --listen "${REDLINE_LISTEN:-0.0.0.0:8080}" \
     --admin-listen "${REDLINE_ADMIN_LISTEN:-0.0.0.0:9090}" \
     --set admin.allow_unauthenticated=true "$@"
