"""Failover figures: runs the fault suite (tests/e2e/test_faults_*.py) and
prints, for each fault, the time to detect it, the time to recover and the
acknowledged objects lost (must be 0).

    .venv/bin/python bench/failover.py [pytest args, e.g. -k etcd]

The faults and how each figure is measured are described in tests/faults.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests/e2e").glob("test_faults_*.py"))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                        *tests, *sys.argv[1:]], cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("FAULT ")]
    print("\n".join(lines) if lines else "no figures")
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-2000:], sep="\n", file=sys.stderr)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
