"""The run-result document: what ``tritforge run`` and ``tritforge estimate --json`` write
and ``tritforge report`` renders (``sim.report``).

The parts the report reads are typed here, every other field is kept as it is: ``layers``
(one entry per quantized matrix of one decode token, at least one), ``per_token``,
``board``, ``energy_table``, and the optional ``model``, ``hwconfig``, ``tokens``,
``timing``, ``memory_fit``, ``assumptions``, ``quality``, ``context_sweep``, ``prompt`` and
``generated_text``. Figures are finite numbers of at most 1e30 (``validation.Figure``), so
that no scaling in the report overflows.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .validation import Amount, Bool, Count, Figure, Int, OpenDoc, Str

Bound = Literal["memory", "compute"]
#: a matrix side the report multiplies with another (their product stays below 2^62)
Side = Annotated[Int, Field(ge=1, le=1 << 31)]


class Layer(OpenDoc):
    name: Str
    out: Side
    in_: Side = Field(alias="in")
    weight_bytes: Amount
    cycles: Count
    compute_s: Amount
    memory_s: Amount
    bound: Bound
    energy_pj: dict[str, Amount]


class PerToken(OpenDoc):
    energy_j: Amount
    energy_breakdown_j: dict[str, Amount]
    tokens_per_s_compute: Amount
    tokens_per_s_memory: Amount
    tokens_per_s: Amount
    bound: Bound
    weight_bytes: Amount | None = None
    memory_efficiency: Amount | None = None
    sustained_gbs: Amount | None = None
    static_w: Amount | None = None
    dram_background_w: Amount | None = None
    context: Count | None = None
    bytes: dict[str, Amount] | None = None

    @model_validator(mode="after")
    def _parts(self):
        if self.memory_efficiency is not None and self.sustained_gbs is None:
            raise ValueError("memory_efficiency without sustained_gbs")
        if self.static_w is not None and self.dram_background_w is None:
            raise ValueError("static_w without dram_background_w")
        if self.energy_j == 0 and any(v > 0 for v in self.energy_breakdown_j.values()):
            raise ValueError("energy_j is 0, but energy_breakdown_j has energy")
        return self


class BoardInfo(OpenDoc):
    name: Str
    clock_mhz: Annotated[Figure, Field(gt=0)]
    bandwidth_gbs: Annotated[Figure, Field(gt=0)]
    memory: Str | None = None
    rows: Side | None = None
    vectors: Side | None = None


class TableInfo(OpenDoc):
    name: Str
    version: Str
    path: Str | None = None
    sha256: Str | None = None


class HwInfo(OpenDoc):
    rows: Side | None = None
    vectors: Side | None = None
    depth: Int | None = None


class MemoryFit(OpenDoc):
    weight_bytes: Amount
    capacity_bytes: Amount
    fits: Bool
    total_bytes: Amount | None = None


class SweepPoint(OpenDoc):
    context: Count
    tokens_per_s: Amount
    energy_j: Amount
    time_s_by_unit: dict[str, Amount]
    bytes: dict[str, Amount]


class Tokens(OpenDoc):
    prompt: Count | None = None
    generated: Count | None = None


class Timing(OpenDoc):
    ttft_s: Amount | None = None
    prefill_cycles: Count | None = None
    decode_cycles_per_token: Count | None = None
    decode_tokens_per_s: Amount | None = None
    wall_s_per_token: Amount | None = None


class Quality(OpenDoc):
    """The figures the report tabulates (``sim.report._QUALITY``)."""

    ppl_source: Figure | None = None
    ppl_quantized: Figure | None = None
    ppl_hw: Figure | None = None
    top1_agreement: Figure | None = None
    logit_rmse: Figure | None = None
    logit_max_abs_err: Figure | None = None
    hw_vs_dequant_rel_err: Figure | None = None


class RunResult(OpenDoc):
    layers: Annotated[list[Layer], Field(min_length=1)]
    per_token: PerToken
    board: BoardInfo
    energy_table: TableInfo
    model: dict | None = None
    hwconfig: HwInfo | None = None
    config: Str | None = None
    mode: Str | None = None
    tokens: Tokens | None = None
    timing: Timing | None = None
    memory_fit: MemoryFit | None = None
    assumptions: dict | None = None
    quality: Quality | None = None
    context_sweep: Annotated[list[SweepPoint], Field(min_length=1)] | None = None
    prompt: Str | None = None
    generated_text: Str | None = None
