"""pytest side of the cocotb benches: where builds live, how a unit is built and run.

Builds go to the pytest cache (``.pytest_cache/d/tritforge-cocotb``), keyed by the
content of the generated Verilog (``sim.cosim.build``), so each parameter set is compiled
once and reused by every test and every later session; with the cache disabled they go
under the session's tmp dir. Set ``TRITFORGE_WAVES=1`` to build with FST tracing and get
``dump.fst`` next to each run's ``sim.log`` (the path is printed).
"""
from __future__ import annotations

import json
from pathlib import Path

from tritforge.sim import cosim

HERE = Path(__file__).resolve().parent


def build_root(request) -> Path:
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("tritforge-cocotb"))
    return request.getfixturevalue("tmp_path_factory").getbasetemp() / "tritforge-cocotb"


def build_component(request, component, toplevel: str, meta: dict | None = None) -> cosim.Build:
    verilog = cosim.convert(component, toplevel)
    return cosim.build(verilog, toplevel, cosim.component_ports(component), build_root(request),
                       meta=meta)


def run_bench(build: cosim.Build, unit: str, params: dict, test_dir, testcase: str | None = None,
              env: dict | None = None) -> cosim.Results:
    """Run tests/cocotb/<unit>/test_<unit>.py on a build; fail the pytest test on any failure."""
    e = {"TRITFORGE_COSIM_PARAMS": json.dumps(params)}
    e.update(env or {})
    res = cosim.run(build, f"test_{unit}", test_dir, env=e, testcase=testcase,
                    seed=params.get("seed"), python_path=[HERE / unit, HERE])
    return res.check(f"cocotb {unit} {json.dumps(params)[:200]}")
