#!/bin/sh
# Builds the base of tickbot's own image, `localhost/tickbot-base:bookworm`, from Debian's
# packages (no public registry is reachable from the build machines): a minimal Debian 12
# rootfs made by debootstrap with what tickbot needs at run time (git for workers' fetches and
# pushes, ca-certificates for GitHub over TLS, skopeo for [images.*]), imported with
# `podman import`.
#
# Idempotent: does nothing when the image already exists. Needs: debootstrap, podman, and a
# Debian mirror (MIRROR, default deb.debian.org).
set -eu

IMAGE="${TICKBOT_BASE_IMAGE:-localhost/tickbot-base:bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$IMAGE"; then
    echo "$IMAGE exists"
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "error: debootstrap is missing: apt-get install debootstrap" >&2
    exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM
# debootstrap does not resolve virtual packages: skopeo's containers-common needs a
# container-network-stack, named here (netavark, which skopeo never uses).
debootstrap --variant=minbase --include=git,ca-certificates,skopeo,netavark \
    bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    echo "error: debootstrap failed (log above)" >&2
    exit 1
}
# Nothing the image does not need at run time.
rm -rf "$work/rootfs/var/cache/apt/archives"/*.deb "$work/rootfs/var/lib/apt/lists"/*
tar -C "$work/rootfs" -c . | podman import \
    --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "built $IMAGE"
