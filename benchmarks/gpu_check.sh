#!/usr/bin/env bash
# The GPU check, on a machine with a CUDA GPU, in under 8 minutes: the `gpu`-marked tests (the
# same work on cuda as on the CPU, tests/test_gpu.py) and the scaling benchmark on cuda
# (benchmarks/scaling.py, skipped with a message where it does not exist). Its figures go to
# one JSON file, $OUT/gpu_check.json (OUT defaults to runs/gpu-check): the tests' counts and
# seconds, the benchmark's record, the device.
#
#   benchmarks/gpu_check.sh             on a GPU machine
#   benchmarks/gpu_check.sh --dry-run   anywhere: checks every path it uses, lists the GPU
#                                       tests' selection and what it would run; times nothing
#
# PYTHON (default: .venv/bin/python, else python3) needs hib's dependencies, with a CUDA build
# of torch for the real check. Exit status: 0 when every step that ran passed.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=false
case "${1:-}" in
  --dry-run) DRY_RUN=true ;;
  "") ;;
  *) echo "usage: benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
OUT=${OUT:-runs/gpu-check}
BUDGET=400  # seconds for the tests and the benchmark together: under 8 minutes with the rest
SCALING=benchmarks/scaling.py
GPU_TESTS=tests/test_gpu.py  # where the gpu-marked tests live
TESTS=(-m pytest -m gpu "$GPU_TESTS" -p no:cacheprovider --junitxml "$OUT/gpu_tests.xml")
BENCH=("$SCALING" --device cuda --json "$OUT/scaling.json")

for path in "$GPU_TESTS" tests/conftest.py pyproject.toml; do
  [ -f "$path" ] || { echo "error: $path is missing" >&2; exit 2; }
done
command -v "$PYTHON" >/dev/null || { echo "error: no python at $PYTHON (set PYTHON)" >&2; exit 2; }
"$PYTHON" -c "import hib, torch" || { echo "error: $PYTHON cannot import hib and torch" >&2; exit 2; }
CUDA=$("$PYTHON" -c "import torch; print(torch.cuda.is_available())")
if ! $DRY_RUN && [ "$CUDA" != True ]; then
  echo "error: torch sees no CUDA GPU here (use --dry-run to check the script itself)" >&2
  exit 2
fi
mkdir -p "$OUT"
rm -f "$OUT/gpu_tests.xml" "$OUT/scaling.json"

echo "== GPU tests: $PYTHON ${TESTS[*]}"
# node ids at the project's own verbosity (pyproject's addopts: -q)
"$PYTHON" -m pytest -m gpu "$GPU_TESTS" --collect-only -p no:cacheprovider |
  grep '::' > "$OUT/gpu_tests.selection" || true
[ -s "$OUT/gpu_tests.selection" ] || { echo "error: no gpu-marked test collected" >&2; exit 2; }
echo "   $(wc -l < "$OUT/gpu_tests.selection") selected (listed in $OUT/gpu_tests.selection)"
tests_rc=null tests_seconds=null scaling_rc=null scaling_seconds=null
start=$SECONDS
if ! $DRY_RUN; then
  set +e
  timeout "$BUDGET" "$PYTHON" "${TESTS[@]}" 2>&1 | tee "$OUT/gpu_tests.log"
  tests_rc=${PIPESTATUS[0]}
  set -e
  tests_seconds=$((SECONDS - start))
fi

if [ -f "$SCALING" ]; then
  scaling_status=run
  left=$((BUDGET - (SECONDS - start)))
  echo "== scaling benchmark (at most ${left} s): $PYTHON ${BENCH[*]}"
  if $DRY_RUN; then
    help=$("$PYTHON" "$SCALING" --help)
    for option in --device --json; do
      grep -q -- "$option" <<< "$help" || { echo "error: $SCALING has no $option" >&2; exit 2; }
    done
    scaling_status=checked
  elif [ "$left" -gt 0 ]; then
    bench_start=$SECONDS
    set +e
    timeout "$left" "$PYTHON" "${BENCH[@]}"
    scaling_rc=$?
    set -e
    scaling_seconds=$((SECONDS - bench_start))
  else
    scaling_status="skipped: the tests used the whole budget"
  fi
else
  scaling_status="skipped: $SCALING not found"
  echo "== $scaling_status"
fi

"$PYTHON" - "$OUT" "$DRY_RUN" "$tests_rc" "$tests_seconds" "$scaling_status" "$scaling_rc" \
  "$scaling_seconds" "$PYTHON ${TESTS[*]}" "$PYTHON ${BENCH[*]}" "$SECONDS" <<'EOF'
"""Writes OUT/gpu_check.json from what the steps left in OUT."""
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

out, dry, tests_rc, tests_s, status, bench_rc, bench_s, tests_cmd, bench_cmd, total = sys.argv[1:]
out = Path(out)
pytest = {
    "command": tests_cmd,
    "selection": (out / "gpu_tests.selection").read_text().split(),
    "rc": json.loads(tests_rc),
    "seconds": json.loads(tests_s),
}
if (out / "gpu_tests.xml").is_file():
    root = ET.parse(out / "gpu_tests.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    pytest |= counts | {"passed": passed, "pytest_seconds": float(suite.get("time", 0.0))}
scaling = {"command": bench_cmd, "status": status, "rc": json.loads(bench_rc)}
scaling["seconds"] = json.loads(bench_s)
if (out / "scaling.json").is_file():
    scaling["record"] = json.loads((out / "scaling.json").read_text())
cuda = torch.cuda.is_available()
record = {
    "dry_run": dry == "true",
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "gpu": torch.cuda.get_device_name() if cuda else None,
    "pytest": pytest,
    "scaling": scaling,
    "seconds": int(total),
}
(out / "gpu_check.json").write_text(json.dumps(record, indent=2) + "\n")
print(f"gpu check: {out / 'gpu_check.json'}")
failed = [rc for rc in (pytest["rc"], scaling["rc"]) if rc not in (None, 0)]
sys.exit(1 if failed else 0)
EOF
