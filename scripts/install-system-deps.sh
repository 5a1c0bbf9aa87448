#!/usr/bin/env bash
# Install the system programs the local backend runs (HAProxy, Prometheus) when missing.
# Idempotent: does nothing when both are on PATH.
set -euo pipefail

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
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
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${missing[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool still not on PATH after apt-get install" >&2; exit 1; }
done
