"""kubelite/api must be what protos/ generate: a stale commit fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date() -> None:
    r = subprocess.run(["bash", "hack/gen-protos.sh", "--check"], cwd=ROOT, capture_output=True,
                       text=True, env={"PY": sys.executable, "PATH": "/usr/bin:/bin"},
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_kind_message_has_the_standard_header() -> None:
    from kubelite.objects import kinds

    for k in kinds.KINDS:
        fields = k.message.DESCRIPTOR.fields_by_name
        assert fields["apiVersion"].number == 1 and fields["kind"].number == 2, k.kind
        assert fields["metadata"].number == 3, k.kind
        assert ("status" in fields) == k.has_status, k.kind
