"""Run every benchmark quoted in docs/benchmarks.md; results go to bench/results/*.json.

.venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ("render_time.py", "env_size.py", "train_time.py", "pipeline_time.py")

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(BENCH / script)], check=True)
