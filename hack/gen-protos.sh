#!/usr/bin/env bash
# Regenerate kubelite/api from protos/kubelite/v1/*.proto.
#   hack/gen-protos.sh          write the generated files
#   hack/gen-protos.sh --check  fail if the committed files are stale
# protoc names modules after the proto path (kubelite.v1.*); we rewrite the
# imports to kubelite.api.* so the generated code lives in our package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/kubelite/v1"
$PY -m grpc_tools.protoc -I protos \
    --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
    --include_source_info --descriptor_set_out="$out/descriptors.binpb" \
    protos/kubelite/v1/*.proto
gen="$out/gen"
mkdir -p "$gen"
for f in "$out"/kubelite/v1/*.py "$out"/kubelite/v1/*.pyi; do
    sed -e 's/^from kubelite\.v1 import /from kubelite.api import /' \
        -e 's/^import kubelite\.v1\.\([a-z_]*\) as/import kubelite.api.\1 as/' \
        "$f" > "$gen/$(basename "$f")"
done
cp "$out/descriptors.binpb" "$gen/descriptors.binpb"
printf '"""Generated from protos/kubelite/v1 by hack/gen-protos.sh; do not edit."""\n' > "$gen/__init__.py"
if [ "${1:-}" = "--check" ]; then
    if ! diff -r -q "$gen" kubelite/api >/dev/null; then
        diff -r -q "$gen" kubelite/api || true
        echo "kubelite/api is stale: run hack/gen-protos.sh and commit the result" >&2
        exit 1
    fi
    echo "kubelite/api is up to date"
else
    rm -rf kubelite/api
    cp -r "$gen" kubelite/api
    echo "generated $(ls kubelite/api | wc -l) files in kubelite/api"
fi
