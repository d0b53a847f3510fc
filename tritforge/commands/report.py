"""``tritforge report``: render a run-result JSON as HTML + Markdown + PNG plots."""
from __future__ import annotations

from ._paths import shown

HELP = "render a run-result JSON (from `tritforge run` or `estimate --json`) as an HTML/Markdown report"


def add_arguments(p) -> None:
    p.add_argument("result", metavar="RESULT.json", help="the run-result JSON")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for report.html, report.md, PNGs, JSON")


def run(args) -> int:
    from ..sim import report

    result = report.load_result(args.result)
    written = report.render(result, args.out)
    pt, t = result["per_token"], result["energy_table"]
    print(f"{(result.get('model') or {}).get('name', 'run')} on {result['board']['name']}: "
          f"{pt['tokens_per_s']:.2f} tok/s ({pt['bound']}-bound), {pt['energy_j']:.4g} J/token, "
          f"energy table {t['name']} {t['version']}")
    for name, path in written.items():
        print(f"  {name:<12} {shown(path)}")
    return 0
