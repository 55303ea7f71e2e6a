#!/usr/bin/env bash
# The base image of the project's images when no registry serves python:3.11-slim: Debian bookworm with
# Python 3.11, venv and pip, made locally with debootstrap from the Debian mirror apt uses, with this
# host's extra CA certificates installed (so TLS to the package index verifies inside image builds), then
# imported as localhost/headliner-base:bookworm. Skips when that image exists (--force rebuilds). About a
# minute and 200 MB. Needs scripts/podman-setup.sh first; runs as root (debootstrap and chroot need it).
#   scripts/base-image.sh            # build once
#   scripts/base-image.sh --force    # build again
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${HEADLINER_BASE_IMAGE:-localhost/headliner-base:bookworm}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/.podman/containers.conf}
[ -f "$CONTAINERS_CONF" ] || { echo "error: $CONTAINERS_CONF missing: run scripts/podman-setup.sh" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "error: $0 needs root (debootstrap, chroot)" >&2; exit 1; }

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
    echo "$IMAGE exists ($(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B); --force rebuilds it"
    exit 0
fi

# The mirror apt is configured with (deb822 sources or the one-line format).
MIRROR=$( (grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list || true) \
    | grep -v security | awk 'NR == 1 {print $2}')
MIRROR=${HEADLINER_DEBIAN_MIRROR:-${MIRROR:-http://deb.debian.org/debian}}

ROOTFS=$(mktemp -d /tmp/headliner-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap bookworm from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOTFS" "$MIRROR" >/dev/null
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
fi
chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc "$ROOTFS"/usr/share/man
# The Debian Python refuses pip into the system (PEP 668): images make a venv, as the Dockerfile does.
tar -C "$ROOTFS" -c . | podman import --quiet \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/usr/bin/python3"]' \
    - "$IMAGE" >/dev/null
echo "$IMAGE built ($(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B)"
