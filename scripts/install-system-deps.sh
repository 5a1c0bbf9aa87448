#!/usr/bin/env bash
# Install what the tests need when missing: the system programs the local backend runs (HAProxy,
# Prometheus), the PostgreSQL server the service's tests start on loopback, and Chromium for the
# report's browser test. Idempotent: does nothing when all are there.
# Chromium is optional: where it cannot be installed the browser test is skipped, with a reason.
set -euo pipefail

# Debian and Ubuntu keep the server binaries off PATH, under /usr/lib/postgresql/<major>/bin.
have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
have_postgres || missing+=(postgresql)
browser=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
  command -v google-chrome >/dev/null 2>&1 || browser=(chromium)
[ ${#missing[@]} -eq 0 ] && [ ${#browser[@]} -eq 0 ] && exit 0

skip_note="the report's browser test will be skipped"
if ! command -v apt-get >/dev/null 2>&1; then
  if [ ${#missing[@]} -eq 0 ]; then
    echo "note: chromium not found and no apt-get to install it: $skip_note." >&2
    exit 0
  fi
  echo "error: ${missing[*]} not found and this is not a Debian/Ubuntu machine (no apt-get)." >&2
  echo "Install ${missing[*]} with your package manager, put them on PATH, and run make again." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  if [ ${#missing[@]} -eq 0 ]; then
    echo "note: chromium not found and installing it needs root: $skip_note" \
      "(sudo apt-get install -y chromium to run it)." >&2
    exit 0
  fi
  echo "error: ${missing[*]} not found and installing needs root." >&2
  echo "Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}  — then run make again." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The packages' own services are not wanted: the plugin starts its own processes on loopback.
# For PostgreSQL that starts with not creating (and starting) the default cluster at all.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/pytest-rollout.conf >/dev/null
fi
"${SUDO[@]}" apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} with apt-get ..."
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for tool in "${missing[@]}"; do
    if [ "$tool" = postgresql ]; then
      have_postgres || { echo "error: no initdb under /usr/lib/postgresql after apt-get install" >&2; exit 1; }
    else
      command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool still not on PATH after apt-get install" >&2; exit 1; }
    fi
  done
fi
if [ ${#browser[@]} -gt 0 ]; then
  echo "Installing ${browser[*]} with apt-get (for the report's browser test) ..."
  # Allowed to fail: not every distribution has a `chromium` package that works without snap.
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${browser[@]}" >/dev/null ||
    echo "note: could not install ${browser[*]}: $skip_note." >&2
fi
