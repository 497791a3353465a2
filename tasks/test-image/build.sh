#!/bin/sh
# Builds the test image `localhost/tickbot-test:latest` from busybox-static, without a registry
# (none is reachable from CI or the build machines): a rootfs holding /bin/busybox and the applet
# symlinks the tests and the demo use, imported with `podman import`.
#
# Idempotent: does nothing when the image already exists. Set CONTAINERS_CONF (see
# tasks/podman-containers.conf) when podman needs it. Needs: podman, runc, busybox-static.
set -eu

IMAGE="${TICKBOT_TEST_IMAGE:-localhost/tickbot-test:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

if podman image exists "$IMAGE"; then
    echo "$IMAGE exists"
    exit 0
fi

if ! "$BUSYBOX" --list >/dev/null 2>&1; then
    echo "error: $BUSYBOX is missing or not busybox; install it: apt-get install busybox-static" >&2
    exit 1
fi
# A dynamically linked busybox would fail inside the image with a confusing "no such file".
if command -v file >/dev/null 2>&1 && file -L "$BUSYBOX" | grep -q 'dynamically linked'; then
    echo "error: $BUSYBOX is dynamically linked; install busybox-static" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM

root="$work/rootfs"
mkdir -p "$root/bin" "$root/tmp" "$root/work" "$root/etc" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
# Every applet this busybox has, so task scripts can use the usual tools.
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

tar -C "$root" -cf "$work/rootfs.tar" .
podman import \
    --change 'ENV PATH=/bin' \
    --change 'WORKDIR /work' \
    --change 'CMD ["/bin/sh"]' \
    "$work/rootfs.tar" "$IMAGE" >/dev/null
echo "built $IMAGE"
