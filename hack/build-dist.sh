#!/usr/bin/env bash
# Build what a real deployment copies to its hosts, on this (the controller)
# machine, into dist/ (override with DIST=...):
#   dist/kubelite-<version>+g<hash>-py3-none-any.whl
#                                              the kubelite wheel; <hash> is the
#                                              sources' own, so a changed tree
#                                              makes a new version that pip on
#                                              the hosts installs, and an
#                                              unchanged one the same file
#   dist/wheelhouse/                           that wheel plus every dependency, as
#                                              binary wheels for CPython 3.11 on
#                                              manylinux2014 (glibc 2.17: CentOS 7 too),
#                                              so hosts install with `pip --no-index`
#   dist/uv                                    the uv binary, for hosts whose Python
#                                              is too old (CentOS 7: ansible/roles/python)
#   dist/images.tar                            `docker save` of kubelite/pause and
#                                              kubelite/busybox (hack/build-images.sh)
# Hosts never compile anything and need no package index.
#
# Reproducible and idempotent: the wheel is built from a clean copy of the
# source with a fixed SOURCE_DATE_EPOCH, and a file in dist/ is replaced only
# when its content changed, so Ansible's copy reports "changed" only then.
# The last line says "dist: changed" or "dist: unchanged".
#
#   hack/build-dist.sh [--no-images]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST=${DIST:-$ROOT/dist}
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
ARCH=${KUBELITE_TARGET_ARCH:-x86_64}
PYVER=${KUBELITE_TARGET_PYTHON:-3.11}
images=1
[ "${1:-}" = --no-images ] && images=0

mkdir -p "$DIST/wheelhouse"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
changed=0

replace_if_changed() {  # $1: new file, $2: destination
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        return
    fi
    cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
    echo "==> updated ${2#"$ROOT"/}"
    changed=1
}

# 1. The wheel, from the files git knows (tracked or new, not ignored): stale
#    build/ trees and local junk never end up in it.
mkdir -p "$tmp/src" "$tmp/wheel"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar -c --null -T - -f - | tar -x -C "$tmp/src"
else
    tar -c --exclude=.venv --exclude=dist --exclude=build --exclude=.vagrant . | tar -x -C "$tmp/src"
fi
# The local version label (PEP 440 "+g<hash>") names the content.
hash=$(cd "$tmp/src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
       sha256sum | cut -c1-12)
sed -i -E "s/^version = \"([^\"+]+)\"/version = \"\1+g$hash\"/" "$tmp/src/pyproject.toml"
SOURCE_DATE_EPOCH=315532800 "$PY" -m pip wheel -q --no-deps \
    -w "$tmp/wheel" "$tmp/src" 2>&1 | grep -v "is ignored" >&2 || true
wheel=$(ls "$tmp"/wheel/kubelite-*.whl)
name=$(basename "$wheel")
for old in "$DIST"/kubelite-*.whl "$DIST"/wheelhouse/kubelite-*.whl; do
    if [ -e "$old" ] && [ "$(basename "$old")" != "$name" ]; then
        rm -f "$old"
        changed=1
    fi
done
replace_if_changed "$wheel" "$DIST/$name"
replace_if_changed "$wheel" "$DIST/wheelhouse/$name"

# 2. The dependencies, for the hosts' platform rather than this one's. Fetched
#    again only when the wheel's requirements change.
reqs=$(unzip -p "$wheel" '*.dist-info/METADATA' | grep '^Requires-Dist:' | grep -v 'extra ==' || true)
stamp="$DIST/wheelhouse/.requirements"
want=$(printf '%s\n%s %s\n' "$reqs" "$ARCH" "$PYVER" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> downloading kubelite's dependencies for CPython $PYVER manylinux2014 $ARCH"
    "$PY" -m pip download -q --only-binary=:all: -d "$DIST/wheelhouse" \
        --python-version "$PYVER" --implementation cp \
        --platform "manylinux2014_$ARCH" --platform "manylinux_2_17_$ARCH" \
        --platform "manylinux2010_$ARCH" --platform "manylinux1_$ARCH" \
        "$DIST/wheelhouse/$name" 2>&1 | grep -v "is ignored" >&2 || true
    # pip prints errors but the filter above hides its exit code: check the result.
    "$PY" - "$DIST/wheelhouse" "$wheel" <<'CHECK'
import re, sys, zipfile
from pathlib import Path
house, wheel = Path(sys.argv[1]), sys.argv[2]
have = {re.sub(r"[-_.]+", "-", p.name.split("-")[0]).lower() for p in house.glob("*.whl")}
meta = zipfile.ZipFile(wheel).read(next(n for n in zipfile.ZipFile(wheel).namelist()
                                        if n.endswith(".dist-info/METADATA"))).decode()
need = [re.split(r"[<>=!~;\[ (]", line.split(":", 1)[1].strip())[0]
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line]
missing = [n for n in need if re.sub(r"[-_.]+", "-", n).lower() not in have]
if missing:
    sys.exit(f"build-dist: no wheel downloaded for {', '.join(missing)}")
CHECK
    echo "$want" >"$stamp"
    changed=1
fi

# 3. uv, a static binary shipped inside its PyPI wheel.
if [ ! -x "$DIST/uv" ]; then
    echo "==> fetching uv for $ARCH"
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp/uv" \
        --platform "manylinux_2_17_$ARCH" --platform "manylinux2014_$ARCH" uv \
        2>&1 | grep -v "is ignored" >&2 || true
    unzip -q -j -o "$tmp"/uv/uv-*.whl '*.data/scripts/uv' -d "$tmp/uv"
    install -m 0755 "$tmp/uv/uv" "$DIST/uv"
    changed=1
fi

# 4. The images every node needs (the pod sandbox) and the smoke check uses.
if [ "$images" = 1 ]; then
    bash hack/start-docker.sh
    bash hack/build-images.sh
    refs=(kubelite/pause:latest kubelite/busybox:latest)
    version_tag=$(docker image ls --format '{{.Repository}}:{{.Tag}}' kubelite/busybox |
                  grep -v ':latest$' | sort | head -1 || true)
    [ -n "$version_tag" ] && refs+=("$version_tag")
    ids=$(for r in "${refs[@]}"; do echo "$r $(docker image inspect -f '{{.Id}}' "$r")"; done)
    if [ ! -f "$DIST/images.tar" ] || [ "$(cat "$DIST/images.ids" 2>/dev/null)" != "$ids" ]; then
        echo "==> docker save ${refs[*]}"
        docker save -o "$DIST/images.tar.tmp" "${refs[@]}"
        mv "$DIST/images.tar.tmp" "$DIST/images.tar"
        echo "$ids" >"$DIST/images.ids"
        changed=1
    fi
elif [ ! -f "$DIST/images.tar" ]; then
    echo "build-dist: --no-images but $DIST/images.tar is missing" >&2
    exit 1
fi

if [ "$changed" = 1 ]; then echo "dist: changed"; else echo "dist: unchanged"; fi
