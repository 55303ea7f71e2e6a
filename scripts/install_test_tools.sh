#!/usr/bin/env bash
# The test tools pip cannot install, from Debian's packages: chromium (the page's browser tests drive it
# through Playwright; Playwright never downloads a browser), fonts for readable screenshots, and curl (the
# deployment tests run the curl command the CLI prints). Installs only what is missing, as root or through
# sudo; does nothing when everything is there.
set -euo pipefail

PACKAGES=(chromium fonts-dejavu-core fonts-liberation curl)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null; then
    SUDO=(sudo)
else
    echo "error: ${missing[*]} missing; run $0 as root (apt-get needs it)" >&2
    exit 1
fi
echo "Installing ${missing[*]} with apt-get"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq "${missing[@]}" >/dev/null
