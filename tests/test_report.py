"""Reports: render a synthetic run-result JSON, check the files and the figures in them; CLI."""
import base64
import json
import os

import pytest

from tritforge.cli import main
from tritforge.errors import TritforgeError
from tritforge.sim import report
from tritforge.sim.actions import Actions
from tritforge.sim.boards import get_board
from tritforge.sim.energy import EnergyTable
from tritforge.sim.estimate import layer_figures, token_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_result() -> dict:
    """A small run result as `tritforge run` writes it (two blocks of q/k/gate/down)."""
    board, table = get_board("kv260"), EnergyTable.load(None)
    hw = board.hwconfig(2)
    layers = []
    for b in range(2):
        for kind, out, in_, cycles, wbytes in (("self_attn.q_proj", 64, 64, 300, 179_200),
                                               ("self_attn.k_proj", 32, 64, 160, 896),
                                               ("mlp.gate_proj", 128, 64, 560, 3584),
                                               ("mlp.down_proj", 64, 128, 9000, 3584)):
            a = Actions(cycles=cycles, trit_addsub=out * in_, trit_skip=out * in_, tree_add=out * in_,
                        group_mul=out * in_ // 16, acc_add=out * in_ // 16, weight_bytes=wbytes,
                        act_read_bits=128 * cycles, result_bits=out * hw.widths.acc)
            layers.append(layer_figures(f"model.layers.{b}.{kind}", out, in_, cycles, a, board, table, hw))
    return {
        "tool": "tritforge", "version": "0.1.0", "created": "2026-11-27T10:00:00+00:00",
        "model": {"name": "tiny-llama", "path": "/tmp/tiny", "arch": "llama", "layers": 2, "hidden": 64,
                  "intermediate": 128, "vocab": 100, "linear_weights": 2 * (64 * 64 + 32 * 64 + 2 * 128 * 64)},
        "config": "uniform-d2", "mode": "tritllm-v2", "hwconfig": {**hw.to_dict(), "derived": hw.derived()},
        "board": board.to_dict(), "energy_table": table.info(),
        "prompt": "Why is the sky <blue>?", "generated_text": "Because of Rayleigh & scattering.",
        "tokens": {"prompt": 7, "generated": 5},
        "timing": {"prefill_cycles": 12345, "prefill_s": 6.2e-5, "ttft_s": 6.2e-5,
                   "decode_cycles_per_token": sum(l["cycles"] for l in layers),
                   "decode_tokens_per_s": 1234.5, "wall_s_per_token": 0.25},
        "layers": layers, "per_token": token_figures(layers, board, table),
        "quality": {"ppl_source": 11.25, "ppl_quantized": 12.5, "ppl_hw": 12.625, "top1_agreement": 0.875,
                    "logit_rmse": 0.3125, "logit_max_abs_err": 2.5, "hw_vs_dequant_rel_err": 0.0078125},
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    result = synthetic_result()
    out = tmp_path_factory.mktemp("rep") / "report"
    return result, out, report.render(result, str(out))


def test_render_writes_every_file(rendered):
    result, out, written = rendered
    assert set(written) == set(report.FILES)
    for name in report.FILES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0 and written[name] == str(path)
    for png in ("roofline.png", "energy.png", "cycles.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert json.loads((out / "result.json").read_text()) == json.loads(json.dumps(result))
    leftovers = [n for n in os.listdir(out.parent) if n.startswith(".report-")]
    assert leftovers == []


def test_html_is_self_contained_and_has_the_figures(rendered):
    result, out, _ = rendered
    page = (out / "report.html").read_text()
    pt = result["per_token"]
    assert page.count('src="data:image/png;base64,') == 3 and 'src="roofline.png"' not in page
    first = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(first).startswith(PNG_MAGIC)
    assert "horowitz-45nm 1.2" in page                           # names the table and its version
    assert report._fmt(pt["tokens_per_s"]) in page and report._fmt(pt["energy_j"]) in page
    assert report._fmt(pt["tokens_per_s_memory"]) in page and report._fmt(pt["tokens_per_s_compute"]) in page
    for value in ("11.25", "12.62", "0.875", "0.3125", "0.007812"):   # quality table
        assert value in page
    assert "Why is the sky &lt;blue&gt;?" in page and "Rayleigh &amp; scattering" in page   # escaped
    assert "model.layers.1.mlp.down_proj" in page and "compute" in page


def test_markdown_links_plots_and_tabulates(rendered):
    result, out, _ = rendered
    md = (out / "report.md").read_text()
    for png in ("roofline.png", "energy.png", "cycles.png"):
        assert f"]({png})" in md
    assert "horowitz-45nm 1.2" in md and "| down_proj | 64 x 128 | 2 |" in md
    assert "| top-1 agreement with source | 0.875 |" in md
    assert report._fmt(result["per_token"]["energy_j"]) in md


def test_kinds_table_sums_layers():
    result = synthetic_result()
    rows = {r["kind"]: r for r in report.kinds_table(result)}
    assert set(rows) == {"q_proj", "k_proj", "gate_proj", "down_proj"}
    assert rows["down_proj"]["count"] == 2 and rows["down_proj"]["cycles"] == 18000
    assert rows["down_proj"]["memory_bound"] == 0 and rows["q_proj"]["memory_bound"] == 2
    total_uj = sum(r["energy_uj"] for r in rows.values())
    pt = result["per_token"]
    static = pt["energy_breakdown_j"]["static_board"] + pt["energy_breakdown_j"]["dram_background"]
    assert total_uj == pytest.approx((pt["energy_j"] - static) * 1e6)      # layers' actions + static power
    kv = get_board("kv260")
    assert static == pytest.approx((kv.static_w + kv.memory_system().background_w) * pt["time_s"])


def test_render_projection_without_quality_and_overwrite(tmp_path):
    from tritforge.sim.estimate import project
    r = project("smollm2-135m", 2, get_board("u280"), EnergyTable.load(None))
    out = tmp_path / "proj"
    out.mkdir()
    (out / "report.md").write_text("old")
    report.render(r, str(out))
    md = (out / "report.md").read_text()
    assert md != "old" and "Not measured" in md and "SmolLM2-135M-Instruct" in md
    assert "| fits the board memory | yes:" in md and "zero-trit fraction 0.438" in md


def test_render_refuses_a_file_as_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(TritforgeError, match="not a folder"):
        report.render(synthetic_result(), str(f))


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("layers"), "run result: layers: missing"),
    (lambda r: r.update(layers=[]), r"layers: expected at least 1 entries, got \[\]"),
    (lambda r: r["layers"][1].pop("cycles"), r"layers\[1\].cycles: missing"),
    (lambda r: r["per_token"].pop("energy_j"), "per_token.energy_j: missing"),
    (lambda r: r["layers"][0].update(cycles="many"), r'layers\[0\].cycles: expected an integer, got "many"'),
    (lambda r: r["layers"][0].update(memory_s=-1.0), r"layers\[0\].memory_s: expected a value >= 0.0, got -1.0"),
    (lambda r: r["layers"][0].update(energy_pj=[1]), r"layers\[0\].energy_pj: expected an object"),
    (lambda r: r.update(per_token=[]), "per_token: expected an object, got \\[\\]"),
    (lambda r: r["energy_table"].pop("version"), "energy_table.version: missing"),
    (lambda r: r["board"].pop("clock_mhz"), "board.clock_mhz: missing"),
    (lambda r: r["per_token"].update(tokens_per_s=None), "per_token.tokens_per_s: expected a number, got null"),
])
def test_check_result_errors(mutate, message):
    r = synthetic_result()
    mutate(r)
    with pytest.raises(TritforgeError, match=message):
        report.check_result(r)
    with pytest.raises(TritforgeError, match="run result: expected an object"):
        report.check_result([1])


# --- CLI ---------------------------------------------------------------------------------

def test_cli_report(tmp_path, capsys):
    src = tmp_path / "run.json"
    src.write_text(json.dumps(synthetic_result()))
    assert main(["report", str(src), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "tiny-llama on kv260" in text and "horowitz-45nm 1.2" in text and "report.html" in text
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.parametrize("content, message", [
    (None, "cannot read run result"),
    ("{nope", "not valid JSON"),
    ('{"layers": []}', "layers: expected at least 1 entries"),
])
def test_cli_report_errors(tmp_path, capsys, content, message):
    src = tmp_path / "run.json"
    if content is not None:
        src.write_text(content)
    assert main(["report", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("tritforge report: error:") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_render_context_sweep(tmp_path):
    from tritforge.sim.estimate import context_sweep, project

    board, table = get_board("kv260"), EnergyTable.load(None)
    r = project("smollm2-135m", 2, board, table, context=1024)
    r["context_sweep"] = context_sweep("smollm2-135m", 2, board, table, points=3)
    written = report.render(r, str(tmp_path / "rep"))
    assert "sweep.png" in written and open(written["sweep.png"], "rb").read(8) == PNG_MAGIC
    md = open(written["report.md"]).read()
    assert "## Context sweep" in md and "| 8,192 |" in md and "| 0 |" in md
    assert "static_board" in md and "dram_background" in md           # the energy breakdown includes static power
    ctx = [p["context"] for p in r["context_sweep"]]
    assert ctx == [0, 4096, 8192]
    tps = [p["tokens_per_s"] for p in r["context_sweep"]]
    assert tps[0] > tps[1] > tps[2]                                   # the KV cache slows decode down
