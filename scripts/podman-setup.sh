#!/usr/bin/env bash
# Podman for the project's containers, with no Docker daemon and no registry (see docs/containers.md):
# installs Debian's podman, runc and debootstrap when missing (as root or through sudo), and writes the
# settings this kernel needs into the project's own .podman/containers.conf (runtime runc, since crun
# fails on hybrid cgroups here; default ulimits within the host's hard limits, since podman's defaults
# fail to set). Nothing is written to the system's configuration: commands use the file through
#   export CONTAINERS_CONF="$PWD/.podman/containers.conf"
# (the last line this prints). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(podman runc debootstrap)
missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
        echo "error: ${missing[*]} missing; run $0 as root (apt-get needs it)" >&2
        exit 1
    fi
    echo "Installing ${missing[*]} with apt-get"
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Default ulimits: the host's hard limits, capped (podman fails to set limits above them).
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=32768
[ "$nofile" -gt 20000 ] && nofile=20000
[ "$nproc" -gt 32768 ] && nproc=32768

mkdir -p .podman
cat > .podman/containers.conf <<CONF
# Written by scripts/podman-setup.sh for this machine; used through CONTAINERS_CONF, never installed.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
CONF
echo "podman $(podman --version | awk '{print $3}') ready; settings in .podman/containers.conf:"
echo "  export CONTAINERS_CONF=$PWD/.podman/containers.conf"
