"""``make bench``: run every ``bench/bench_*.py`` in turn.

Each script runs in its own interpreter (the one running this file), its output streamed
under a header. A failing script does not stop the others; the exit status is 1 if any
failed. Extra arguments select scripts by name: ``bench/run.py codec sim``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def discover(selected: list[str]) -> list[str]:
    names = sorted(f for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    if selected:
        names = [n for n in names if any(s in n for s in selected)]
    return [os.path.join(HERE, n) for n in names]


def main(argv: list[str]) -> int:
    scripts = discover(argv)
    if not scripts:
        print(f"bench: no bench_*.py scripts{' matching ' + ' '.join(argv) if argv else ''} in {HERE}")
        return 1
    results = []
    for path in scripts:
        name = os.path.basename(path)
        print(f"\n===== {name} " + "=" * max(3, 70 - len(name)), flush=True)
        t0 = time.perf_counter()
        try:
            rc = subprocess.call([sys.executable, path], cwd=os.path.dirname(HERE))
        except KeyboardInterrupt:
            print(f"bench: interrupted in {name}")
            return 130
        results.append((name, rc, time.perf_counter() - t0))
    print("\n===== summary " + "=" * 62)
    for name, rc, secs in results:
        print(f"  {name:<32} {'ok' if rc == 0 else f'FAILED (exit {rc})':<18} {secs:8.1f} s")
    failed = [n for n, rc, _ in results if rc != 0]
    print(f"bench: {len(results) - len(failed)} of {len(results)} scripts ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
