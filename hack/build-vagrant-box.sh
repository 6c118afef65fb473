#!/usr/bin/env bash
# Build a Debian 12 Vagrant box for libvirt from Debian's packages, for hosts
# that cannot download one, and add it to Vagrant as kubelite/debian12.
# Run as root. About 2 minutes and 1 GB of disk; needs Debian's mirror.
#
# The image has no bootloader: libvirt boots the image's own kernel and
# initrd, copied out next to the box (the Vagrantfile's libvirt_kernel,
# libvirt_initrd and libvirt_cmd_line "root=/dev/vda rw console=ttyS0").
# It has an empty /etc/machine-id and no SSH host keys, so every VM cloned
# from it gets its own (else they share one DHCP client id and wait for an
# address); the host keys are made on first boot.
#
# Output in $OUT (default .vagrant-box/; the kernel and initrd go to
# /var/lib/libvirt/images when it exists, where libvirt's qemu can read them):
#   kubelite-debian12.box    the box (a qcow2 image and its metadata)
#   vagrant_key(.pub)        the key the box's vagrant user accepts (KUBELITE_SSH_KEY)
#   env                      the KUBELITE_* settings that boot it, to source
#
#   hack/build-vagrant-box.sh [--force] [--docker]
#     --force   rebuild even if Vagrant already has the box
#     --docker  also `docker import` the root filesystem as kubelite/debian12,
#               for the Vagrantfile's docker provider (systemd + sshd inside)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/.vagrant-box}
BOX_NAME=${BOX_NAME:-kubelite/debian12}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
SIZE=${SIZE:-8G}
force=0 docker=0
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        --docker) docker=1 ;;
        *) echo "usage: $0 [--force] [--docker]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "build-vagrant-box: run as root (debootstrap, chroot)" >&2; exit 1; }

if [ -d /var/lib/libvirt/images ]; then BOOT_DIR=${BOOT_DIR:-/var/lib/libvirt/images}; else BOOT_DIR=${BOOT_DIR:-$OUT}; fi
slug=${BOX_NAME//\//-}
kernel=$BOOT_DIR/$slug-vmlinuz
initrd=$BOOT_DIR/$slug-initrd.img

write_env() {
    cat >"$OUT/env" <<EOF
# Settings that boot $BOX_NAME under libvirt without KVM (source this file).
export KUBELITE_BOX=$BOX_NAME
export KUBELITE_SSH_KEY=$OUT/vagrant_key
export KUBELITE_LIBVIRT_KERNEL=$kernel
export KUBELITE_LIBVIRT_INITRD=$initrd
export KUBELITE_LIBVIRT_CMD_LINE="root=/dev/vda rw console=ttyS0 net.ifnames=0"
export KUBELITE_LIBVIRT_DRIVER=\${KUBELITE_LIBVIRT_DRIVER:-qemu}
export KUBELITE_LIBVIRT_CPU_MODE=\${KUBELITE_LIBVIRT_CPU_MODE:-custom}
export KUBELITE_LIBVIRT_CPU_MODEL=\${KUBELITE_LIBVIRT_CPU_MODEL:-qemu64}
EOF
}

if [ "$force" = 0 ] && vagrant box list 2>/dev/null | grep -q "^$BOX_NAME " &&
        [ -f "$kernel" ] && [ -f "$initrd" ] && [ -f "$OUT/vagrant_key" ]; then
    echo "==> $BOX_NAME is already added (--force rebuilds it)"
    write_env
    exit 0
fi

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
if ((${#need[@]})); then
    echo "==> apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null
fi

mkdir -p "$OUT" "$BOOT_DIR"
work=$(mktemp -d "$OUT/build.XXXXXX")
cleanup() {
    for m in dev/pts dev proc sys; do
        mountpoint -q "$work/rootfs/$m" 2>/dev/null && umount -l "$work/rootfs/$m"
    done
    rm -rf "$work"
}
trap cleanup EXIT
rootfs=$work/rootfs

echo "==> debootstrap $SUITE (minbase)"
debootstrap --variant=minbase \
    --include=systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,openssh-server,python3,sudo,iproute2,systemd-resolved,ca-certificates,apt-transport-https,gnupg \
    "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log" >&2; exit 1; }

echo "==> configuring the image"
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
mount --bind /dev "$rootfs/dev"
mount --bind /dev/pts "$rootfs/dev/pts"
mount -t proc proc "$rootfs/proc"
mount -t sysfs sys "$rootfs/sys"

echo debian12 >"$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 debian12\n' >"$rootfs/etc/hosts"
printf '/dev/vda / ext4 errors=remount-ro 0 1\n' >"$rootfs/etc/fstab"
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://security.debian.org/debian-security $SUITE-security main
EOF

# Networking: systemd-networkd, DHCP on the first interface (eth0 with
# net.ifnames=0). Vagrant configures the private network itself (eth1).
mkdir -p "$rootfs/etc/systemd/network"
cat >"$rootfs/etc/systemd/network/99-eth0-dhcp.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
in_root systemctl enable systemd-networkd systemd-resolved >/dev/null 2>&1
ln -sf /run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"

# The virtio drivers in the initrd: the root disk is /dev/vda.
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >>"$rootfs/etc/initramfs-tools/modules"
in_root update-initramfs -u -k all >/dev/null 2>&1

# The vagrant user, with a key made here (Vagrant's insecure key is not trusted).
[ -f "$OUT/vagrant_key" ] || ssh-keygen -q -t ed25519 -N '' -C "kubelite vagrant box" -f "$OUT/vagrant_key"
in_root useradd -m -s /bin/bash vagrant
install -d -m 0700 -o 1000 -g 1000 "$rootfs/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$OUT/vagrant_key.pub" "$rootfs/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$rootfs/etc/sudoers.d/vagrant"
chmod 0440 "$rootfs/etc/sudoers.d/vagrant"
sed -i 's/^#\?UseDNS.*/UseDNS no/' "$rootfs/etc/ssh/sshd_config"

# Per-VM identity: no SSH host keys (made on first boot), empty machine-id.
rm -f "$rootfs"/etc/ssh/ssh_host_*
cat >"$rootfs/etc/systemd/system/ssh-host-keys.service" <<'EOF'
[Unit]
Description=Make this machine's SSH host keys
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
EOF
in_root systemctl enable ssh-host-keys.service ssh.service >/dev/null 2>&1
: >"$rootfs/etc/machine-id"
# A first boot (empty machine-id) must not stop at systemd-firstboot's prompts.
ln -sf /dev/null "$rootfs/etc/systemd/system/systemd-firstboot.service"
rm -f "$rootfs/var/lib/dbus/machine-id"
in_root apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* "$rootfs"/var/log/*.log
for m in sys proc dev/pts dev; do umount -l "$rootfs/$m"; done

echo "==> kernel and initrd to $BOOT_DIR"
install -m 0644 "$(printf '%s\n' "$rootfs"/boot/vmlinuz-* | sort -V | tail -1)" "$kernel"
install -m 0644 "$(printf '%s\n' "$rootfs"/boot/initrd.img-* | sort -V | tail -1)" "$initrd"

if [ "$docker" = 1 ]; then
    echo "==> docker import kubelite/debian12 (for the docker provider)"
    tar -C "$rootfs" --exclude=./boot -c . | docker import \
        -c 'CMD ["/lib/systemd/systemd"]' - kubelite/debian12 >/dev/null
fi

echo "==> ext4 image ($SIZE) and qcow2"
truncate -s "$SIZE" "$work/root.raw"
mkfs.ext4 -q -L root -d "$rootfs" "$work/root.raw"
rm -rf "$rootfs"
qemu-img convert -O qcow2 "$work/root.raw" "$work/box.img"
rm -f "$work/root.raw"
cat >"$work/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": ${SIZE%G}}
EOF
cat >"$work/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
EOF
tar -C "$work" -cf "$OUT/$slug.box" metadata.json Vagrantfile box.img

echo "==> vagrant box add $BOX_NAME"
vagrant box add --force --name "$BOX_NAME" "$OUT/$slug.box" >/dev/null
# vagrant-libvirt uploads a box into the storage pool once and reuses that
# volume: drop the old one so the next `vagrant up` takes the new image.
if command -v virsh >/dev/null && virsh -c qemu:///system pool-info default >/dev/null 2>&1; then
    # (awk, not grep: no stale volume is no error under pipefail)
    virsh -c qemu:///system vol-list default 2>/dev/null |
        awk -v p="${BOX_NAME//\//-VAGRANTSLASH-}_vagrant_box_image_" 'index($1, p) == 1 {print $1}' |
        while read -r vol; do virsh -c qemu:///system vol-delete --pool default "$vol" >/dev/null; done
fi
write_env
echo "==> done: source $OUT/env, then vagrant up --provider=libvirt"
