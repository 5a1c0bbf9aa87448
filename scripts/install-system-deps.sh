#!/usr/bin/env bash
# Install the system programs the local backend runs (HAProxy, Prometheus) and the PostgreSQL
# server the service's tests start on loopback, when missing.
# Idempotent: does nothing when all are there.
set -euo pipefail

# Debian and Ubuntu keep the server binaries off PATH, under /usr/lib/postgresql/<major>/bin.
have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
have_postgres || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: ${missing[*]} not found and this is not a Debian/Ubuntu machine (no apt-get)." >&2
  echo "Install ${missing[*]} with your package manager, put them on PATH, and run make again." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "error: ${missing[*]} not found and installing needs root." >&2
  echo "Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}  — then run make again." >&2
  exit 1
fi

echo "Installing ${missing[*]} with apt-get ..."
export DEBIAN_FRONTEND=noninteractive
# The packages' own services are not wanted: the plugin starts its own processes on loopback.
# For PostgreSQL that starts with not creating (and starting) the default cluster at all.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/pytest-rollout.conf >/dev/null
fi
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${missing[@]}"; do
  if [ "$tool" = postgresql ]; then
    have_postgres || { echo "error: no initdb under /usr/lib/postgresql after apt-get install" >&2; exit 1; }
  else
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool still not on PATH after apt-get install" >&2; exit 1; }
  fi
done
