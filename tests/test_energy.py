"""Energy tables: the default (Horowitz 45 nm) numbers, width interpolation, validation errors."""
import math

import pytest

from tritforge.errors import TritforgeError
from tritforge.hwconfig import HwConfig
from tritforge.sim.actions import Actions
from tritforge.sim.energy import EnergyTable, default_table_path, tree_mean_width

PRIMS = """
name = "test-table"
version = "0.1"
[primitives.add]
bits = [8, 16, 32]
pj = [0.03, 0.05, 0.1]
source = "Horowitz 2014"
[primitives.mult]
bits = [8, 32]
pj = [0.2, 3.1]
source = "Horowitz 2014"
[primitives.sram]
kbytes = [8, 32, 1024]
pj_per_64bit = [10.0, 20.0, 100.0]
source = "Horowitz 2014"
[memory.hbm2]
pj_per_bit = 3.9
source = "O'Connor 2017"
"""


def table_text(overrides: dict | None = None, drop: tuple = ()) -> str:
    """A valid table: every action fixed at 1 pJ, except those given as TOML bodies."""
    rows = {n: 'pj = 1.0\nsource = "test"' for n in Actions.names()}
    rows.update(overrides or {})
    body = "".join(f"[actions.{n}]\n{v}\n" for n, v in rows.items() if n not in drop)
    return PRIMS + body


def load(tmp_path, text: str, name: str = "t.toml") -> EnergyTable:
    p = tmp_path / name
    p.write_text(text)
    return EnergyTable.load(str(p))


# --- the default table -------------------------------------------------------------------

def test_default_table_names_itself_and_covers_every_counter():
    t = EnergyTable.load(None)
    info = t.info()
    assert info["name"] == "horowitz-45nm" and info["version"] == "1.2"
    assert info["path"] == default_table_path() and len(info["sha256"]) == 64
    assert set(t.actions) == set(Actions.names())
    assert all(row.source.strip() for row in t.actions.values())
    assert {"ddr4", "lpddr4", "hbm2", "sdram", "spi-flash", "dram-45nm"} <= set(t.memory)
    assert t.memory_pj_per_bit("hbm2") == 3.9
    assert all(m.source for m in t.memory.values())


def test_default_table_horowitz_points():
    t = EnergyTable.load(None)
    assert t._prim("add", 8) == pytest.approx(0.03)
    assert t._prim("add", 16) == pytest.approx(0.05)
    assert t._prim("add", 32) == pytest.approx(0.1)
    assert t._prim("mult", 8 * 8) == pytest.approx(0.2)
    assert t._prim("mult", 32 * 32) == pytest.approx(3.1)
    assert t._prim("sram", 8) == pytest.approx(10.0)
    assert t._prim("sram", 32) == pytest.approx(20.0)
    assert t._prim("sram", 1024) == pytest.approx(100.0)


def test_interpolation_rules():
    t = EnergyTable.load(None)
    assert t._prim("add", 12) == pytest.approx(0.04)                 # linear between 8 and 16
    assert t._prim("add", 48) == pytest.approx(0.15)                 # 16->32 slope continues
    assert t._prim("mult", 12 * 14) == pytest.approx(0.2 + (168 - 64) / 960 * 2.9)
    assert t._prim("sram", 16) == pytest.approx(10 * math.sqrt(2))   # log-log: sqrt(size) here
    assert t._prim("sram", 2) == pytest.approx(5.0)                  # below 8 KB, same slope


def test_tree_mean_width():
    assert tree_mean_width(8) == pytest.approx((8 * 9 + 4 * 10 + 2 * 11 + 12) / 15)


def test_action_pj_resolves_hardware_widths():
    t = EnergyTable.load(None)
    hw = HwConfig(depth=2)
    w = hw.widths
    pj = t.action_pj("hbm2", hw)
    assert pj["trit_addsub"] == pytest.approx(0.03)
    assert pj["trit_skip"] == 0.0
    assert pj["plane_add"] == pytest.approx(t._prim("add", w.dot))
    assert pj["group_mul"] == pytest.approx(t._prim("mult", hw.mant_bits * w.dot))
    assert pj["acc_add"] == pytest.approx(0.1 + (w.acc - 32) * 0.05 / 16)
    assert pj["weight_bytes"] == pytest.approx(8 * 3.9)
    assert pj["result_bits"] == pytest.approx(3.9)
    act_kb = hw.act_buffer_words * 16 / 1024
    assert pj["act_read_bits"] == pytest.approx(t._prim("sram", act_kb) / 64)
    # deeper weights -> wider dot product -> dearer multiply and plane adds
    pj4 = t.action_pj("hbm2", HwConfig(depth=4))
    assert pj4["group_mul"] > pj["group_mul"] and pj4["plane_add"] > pj["plane_add"]


def test_energy_pj_hand_computed():
    t = EnergyTable.load(None)
    a = Actions(trit_addsub=10, trit_skip=5, weight_bytes=2, result_bits=3)
    e = t.energy_pj(a, "hbm2")
    assert e["trit_addsub"] == pytest.approx(0.3)
    assert e["trit_skip"] == 0.0
    assert e["weight_bytes"] == pytest.approx(2 * 8 * 3.9)
    assert e["result_bits"] == pytest.approx(3 * 3.9)
    assert sum(e.values()) == pytest.approx(0.3 + 62.4 + 11.7)
    assert t.energy_pj(a.to_dict(), "hbm2") == e                   # a dict works too
    assert set(e) == set(Actions.names())
    rows = t.rows("hbm2")
    assert {r["action"] for r in rows} == set(Actions.names()) and all(r["source"] for r in rows)


def test_energy_pj_errors():
    t = EnergyTable.load(None)
    with pytest.raises(TritforgeError, match="memory type 'sram'"):
        t.energy_pj(Actions(), "sram")
    with pytest.raises(TritforgeError, match="unknown counters"):
        t.energy_pj({"bogus": 1}, "hbm2")


# --- user tables -------------------------------------------------------------------------

def test_user_table_loads_and_is_named(tmp_path):
    t = load(tmp_path, table_text({"acc_add": 'op = "add"\nbits = 12\nsource = "x"'}))
    assert (t.name, t.version) == ("test-table", "0.1")
    assert t.action_pj("hbm2")["acc_add"] == pytest.approx(0.04)
    assert t.energy_pj(Actions(cycles=3, trit_skip=2), "hbm2")["cycles"] == 3.0


@pytest.mark.parametrize("text, message", [
    (table_text({"trit_addsub": "pj = 0.03"}), "actions.trit_addsub.source: missing"),
    (table_text({"trit_addsub": 'pj = -0.5\nsource = "x"'}), "actions.trit_addsub.pj: expected a value >= 0"),
    (table_text({"bogus_action": 'pj = 1.0\nsource = "x"'}), "unknown actions"),
    (table_text(drop=("group_mul",)), "missing actions"),
    (table_text({"group_mul": 'op = "divide"\nsource = "x"'}), "actions.group_mul.op: expected 'add'"),
    (table_text({"group_mul": 'op = "mult"\nbits = ["mant", "wide"]\nsource = "x"'}), "actions.group_mul.bits\\[1\\]: expected a width"),
    (table_text({"group_mul": 'op = "mult"\nbits = ["mant"]\nsource = "x"'}), "two widths"),
    (table_text({"group_mul": 'op = "mult"\nbits = ["mant", "dot"]\npj = 1\nsource = "x"'}), "not both"),
    (table_text({"group_mul": 'source = "x"'}), "needs 'pj' or 'op'"),
    (table_text({"act_read_bits": 'op = "sram"\nsize = "huge"\nsource = "x"'}), "actions.act_read_bits.size: expected bytes in"),
    (table_text({"weight_bytes": 'op = "memory"\nunit = "word"\nsource = "x"'}), "actions.weight_bytes.unit: expected 'bit' or 'byte'"),
    (table_text({"trit_addsub": 'pj = "cheap"\nsource = "x"'}), "actions.trit_addsub.pj: expected a number"),
    (table_text().replace('name = "test-table"', ""), "name: missing"),
    (table_text().replace('version = "0.1"', ""), "version: missing"),
    (table_text().replace("pj_per_bit = 3.9", "pj_per_bit = -3.9"), "pj_per_bit: expected a value >= 0"),
    (table_text().replace('source = "O\'Connor 2017"', ""), "source: missing"),
    (table_text().replace("bits = [8, 16, 32]", "bits = [16, 8, 32]"), "increasing"),
    (table_text().replace("pj = [0.03, 0.05, 0.1]", "pj = [0.03, -0.05, 0.1]"), "primitives.add.pj\\[1\\]: expected a value >= 0"),
    (table_text().replace("pj = [0.2, 3.1]", "pj = [0.2]"), "equal"),
    (table_text({"trit_addsub": 'op = "add"\nbits = 8\nsource = "x"'}).replace(
        '[primitives.add]\nbits = [8, 16, 32]\npj = [0.03, 0.05, 0.1]\nsource = "Horowitz 2014"', ""),
     "needs a \\[primitives.add\\]"),
    (table_text().replace("[primitives.add]", "[primitives.divide]"), "primitives.divide: unknown field"),
    ("name = 'x'\nversion = '1'\n[actions.cycles]\npj = 0\nsource = 's'\n", "memory: missing"),
    ("name = 'x'\nversion = '1'\nextra = 1\n", "memory: missing"),
    ("extra = 1\n" + table_text(), "extra: unknown field"),
    (table_text({"group_mul": 'op = "mult"\nbits = ["mant", "dot"]\nunit = "bit"\nsource = "x"'}), "'unit' does not apply"),
    (table_text({"acc_add": 'op = "clock"\nshare = 0.2\nsource = "x"'}), "actions.acc_add: op 'clock' prices only"),
    (table_text({"act_read_bits": 'op = "sram"\nsource = "x"'}), "op 'sram' needs 'size'"),
    ("name = = 'x'", "not valid TOML"),
])
def test_table_validation_errors(tmp_path, text, message):
    with pytest.raises(TritforgeError, match=message) as exc:
        load(tmp_path, text)
    assert "\n" not in str(exc.value) and "t.toml" in str(exc.value)


def test_missing_table_file(tmp_path):
    with pytest.raises(TritforgeError, match="cannot read"):
        EnergyTable.load(str(tmp_path / "nope.toml"))


def test_fpga_table_and_clock_cost():
    from tritforge.hwconfig import HwConfig
    from tritforge.sim.energy import UNIT_ACTIONS, engine_cycle_datapath_pj

    h = EnergyTable.load(None)
    f = EnergyTable.load(default_table_path().replace("horowitz-45nm", "fpga-ultrascale-16nm"))
    hw = HwConfig(rows=16)
    ph, pf = h.action_pj("ddr4", hw), f.action_pj("ddr4", hw)
    assert pf["trit_addsub"] == pytest.approx(ph["trit_addsub"] * 14 * 0.317, rel=0.01)   # Kuon-Rose x CV^2
    assert pf["cycles"] > 0 and ph["cycles"] == 0
    assert pf["cycles"] == pytest.approx(0.19 / 0.81 * engine_cycle_datapath_pj(pf, hw))
    assert pf["weight_bytes"] == ph["weight_bytes"]                   # memory does not depend on the fabric
    for t in (h, f):
        u = t.unit_pj("hbm2", hw)
        assert set(u) == set(UNIT_ACTIONS) and all(v >= 0 for v in u.values())
        assert u["kv_read_bytes"] == pytest.approx(8 * 3.9)
    assert f.unit_energy_pj({"qk_mac": 10}, "ddr4", hw)["qk_mac"] == pytest.approx(10 * f.unit_pj("ddr4", hw)["qk_mac"])
    with pytest.raises(TritforgeError, match="unknown"):
        f.unit_energy_pj({"nope": 1}, "ddr4", hw)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("[units.qk_mac]", "[units.nope]"), "unknown unit actions"),
    (lambda s: s.replace('op = "clock"\nshare = 0.19', 'op = "clock"\nshare = 1.5'), "share"),
])
def test_fpga_table_validation(tmp_path, edit, message):
    src = open(default_table_path().replace("horowitz-45nm", "fpga-ultrascale-16nm")).read()
    p = tmp_path / "t.toml"
    p.write_text(edit(src))
    with pytest.raises(TritforgeError, match=message):
        EnergyTable.load(str(p))
