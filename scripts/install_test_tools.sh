#!/usr/bin/env bash
# The test tools pip cannot install, from Debian's packages: chromium (the page's browser tests drive it
# through Playwright; Playwright never downloads a browser), fonts for readable screenshots, and curl (the
# deployment tests run the curl command the CLI prints); then what containers need (the containers tier, the
# servers stack's registry-reading image test): podman with the
# project's settings (scripts/podman-setup.sh) and the local base image (scripts/base-image.sh). Installs
# only what is missing, as root or through sudo; does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(chromium fonts-dejavu-core fonts-liberation curl)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "error: $1 needs root; run $0 as root" >&2
        exit 1
    fi
}
if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing ${missing[*]} with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# promtool checks and unit-tests the alert rules in deploy/prometheus, and a test runs a real Prometheus on a
# free port. Debian's package would start a server on :9090 (its postinst asks invoke-rc.d, or systemd, to
# start the service): a policy-rc.d answering 101 ("not allowed") while it installs starts none, with or
# without systemd, and one that was started anyway is stopped.
if ! command -v promtool >/dev/null; then
    echo "Installing prometheus (for promtool) with apt-get"
    policy=/usr/sbin/policy-rc.d
    own_policy=false
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
        own_policy=true
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$?
    if $own_policy; then as_root rm -f "$policy"; fi
    [ "${status:-0}" -eq 0 ] || exit "$status"
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
        as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
fi

# The containers tier: podman, runc and debootstrap with .podman/containers.conf, then the base image (each
# skips what exists).
scripts/podman-setup.sh >/dev/null
as_root scripts/base-image.sh >/dev/null
