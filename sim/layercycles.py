"""Cycles of the decoder-layer top (hw/layer.py, hw/LAYER.md "Timing") for one command —
one decode token, or T prompt tokens on a build of T — with every stream valid and
ready: the schedule's phases from the units' own closed forms (``sim.vectorcycles``,
``sim.attentioncycles``) and the engine's (``tritforge.hwconfig``: ``pipeline_stages``;
a beat taken every T cycles, each used once per vector; a tile's last beat taken in c
gives vector v's result beat in c + v + ``pipeline_stages``).

``layer_cycles(lcfg, pos)`` returns each phase's cycles, in schedule order, and their sum:
the cycles from the one after the command is accepted to the last ``h_out`` beat,
inclusive (tests/test_hw_layer.py holds the RTL to it).

Phase by phase (S: the phase's first cycle):

* a reader started at S gives its first element at S + 3 (the command, then the block
  RAM's address and output registers);
* a matrix: 27 codebook cycles, MAT, CMD (the engine takes the command at S + 28); its
  first weight beat two cycles after its last activation word (after the command when it
  reuses the loaded vector); the phase ends the cycle after its last row is written:
  ``pipeline_stages`` after the last beat, the register slice before the serializer, the
  serializer's rows of the last tile and the requantizer's registers;
* the activation words: a packer beat the cycle after its 16th element, from norm 1 (fed
  in HIN), norm 2 (at T = 1 fed o's rows as they were written: its last element in o's
  last cycle; at T > 1 fed by a reader from the NORM2 cycle), the act quantizer: at T = 1 it
  took o's vector as ATT wrote it and down's from SiLU·mul beside up's rows (its last
  product SILU_STAGES after up's last row), and gives it from the later of the matrix's
  RUN (S + MATRIX_SETUP) and its own first output, one element per cycle; at T > 1 it is
  fed by a reader from o's first cycle, or by SiLU·mul of two readers from down's;
* the K/V rows (KVW, beside ROPE) and a job's query heads (ATT) pass their int8 quantizer back to back
  (two banks: a head comes in while the previous one is divided and read out), as
  ``int8quant_stream_cycles`` gives them;
* T > 1: q's codebook, constants and command come first, then HIN; a matrix's input
  vectors are fed one token at a time, token t + 1's from the cycle after the engine took
  token t's last word (a norm's vector: its h, then its rmsnorm_cycles; the act
  quantizer's: a read, its int8quant_cycles, the packer); the per-token phases (ROPE with
  KVW, ATT, HOUT) run once per token, each token's pass timed as a phase of its own; a
  tile's T result beats pass a FIFO (RESULT_FIFO_CYCLES) and leave the serializer R
  elements each, so the engine never waits for them while R <= a matrix's groups.
* ATT: per KV head, one job after the other; the query heads of a group read and
  quantized from the cycle after the previous job's command (the first group's from the
  phase's first cycle) into a FIFO of one job's beats, each job's query load ending with
  the later of its own g·B cycles and its group's last beat out of the FIFO; then the
  job's cycles after its query load (``job_cycles`` less g·B); the serializer into the
  memory takes each output beat in ``lanes`` cycles, as fast as the unit forms them, so
  only the job's last beat adds ``lanes - 1`` cycles.
"""
from __future__ import annotations

from ..layerconfig import LayerConfig
from ..vectortiming import INT8Q_PREP_CYCLES, VECMEM_READ_LATENCY
from .attentioncycles import job_cycles
from .vectorcycles import (SILU_STAGES, Int8QuantStream, int8quant_cycles, int8quant_stream_cycles, requant_cycles,
                           rmsnorm_cycles, rope_cycles)

#: codebook entries per matrix (hw/layer.py CODEBOOK_ENTRIES), then MAT and CMD
MATRIX_SETUP = 27 + 1 + 1
#: a reader's first element: S + READ_LATENCY (the command, then the block RAM's address
#: and output registers)
READ_LATENCY = 1 + VECMEM_READ_LATENCY
#: an engine command accepted in cycle c: with the vector already loaded, its first beat in c + 2
CMD_TO_BEAT = 2
#: T > 1: a result beat written into the layer's result FIFO is read a cycle later
RESULT_FIFO_CYCLES = 1
#: the register slice between the engine's result beats and their serializer
RESULT_SLICE_CYCLES = 1
#: ROPE: the cycles between the k heads' last element and the q heads' first (the reader's
#: next command is taken the cycle after its last element, its first element READ_LATENCY later)
ROPE_GAP = READ_LATENCY
# a reader restarted the cycle after a vector's last element offers the next one before an
# Int8Quantizer receives again (INT8Q_PREP_CYCLES + 2 cycles later at the earliest), so
# vectors read one after the other pass it as ``int8quant_stream_cycles`` says
assert READ_LATENCY + 1 <= INT8Q_PREP_CYCLES + 2


def layer_cycles(lcfg: LayerConfig, pos: int) -> dict:
    """{"phases": [(name, cycles)], "total": cycles} of one decode token at ``pos``."""
    e, v = lcfg.accel.engine, lcfg.accel.vector
    B = v.scale_bits
    H, hd, T = lcfg.hidden, lcfg.head_dim, lcfg.tokens
    ucfg = lcfg.attention_unit
    phases = []
    t = 1                                         # the cycle after the command

    def phase(name, end):
        nonlocal t
        phases.append((name, end - t))
        t = end

    def last_word(last_element: int) -> int:
        return last_element + 1

    def fed(first_word_end: int, per_token: int) -> int:
        """The cycle of the last word of T vectors fed one after the other: token 0's
        last word at ``first_word_end``, each next token's source started the cycle after
        the previous one's last word and ending ``per_token`` cycles after its start."""
        return first_word_end + (T - 1) * (per_token + 1)

    def matrix(mt, source_end=None):
        S = t
        cmd = S + MATRIX_SETUP - 1
        if mt.load:
            first = max(cmd + CMD_TO_BEAT + T * mt.groups - 1, source_end) + 2
        else:
            first = cmd + CMD_TO_BEAT
        beats = e.tiles(mt.out_features) * mt.groups
        last_rows = mt.out_features - (e.tiles(mt.out_features) - 1) * e.rows
        last_beat = first + (beats - 1) * T
        last_write = last_beat + e.pipeline_stages + RESULT_FIFO_CYCLES * (T > 1) + RESULT_SLICE_CYCLES + \
            (T - 1) * e.rows + \
            (last_rows - 1) + (requant_cycles(1, residual=mt.residual) - 1)
        phase(mt.name, last_write + 1)

    mats = {mt.name: mt for mt in lcfg.matrices}
    rms = rmsnorm_cycles(H, v)
    if T == 1:
        # HIN: h into the memory and norm 1, then q
        norm1_end = last_word(t + rms - 1)
        phase("hin", t + H)
        matrix(mats["q"], norm1_end)
    else:
        # q's command, then HIN: token t + 1's h from the cycle after token t's last word
        hin = t + MATRIX_SETUP
        matrix(mats["q"], fed(last_word(hin + rms - 1), rms))
    matrix(mats["k"])
    matrix(mats["v"])
    def stream(count: int) -> int:
        """``count`` heads back to back through a quantizer of two banks."""
        return int8quant_stream_cycles(hd, count, B, banks=2)

    # ROPE with KVW beside it, per token (cycles from the pass's first): reader 0 gives
    # the k heads, then (its next command taken once it is idle: ROPE_GAP cycles without
    # an element) the q heads to the RoPE unit, one element per cycle; from the cycle after
    # the last k head's write reader 1 gives the 2 Hkv K and V rows to the KV quantizer,
    # its packer onto kv_wr; the pass ends two cycles after the later of the last write
    # and the last kv_wr beat (each raises a flag, the two flags end it)
    heads = lcfg.heads + lcfg.kv_heads
    first = READ_LATENCY - 1                      # the k heads' first element (the read at 0)
    k_written = first + (lcfg.kv_heads - 1) * hd + rope_cycles(hd)
    rope_written = first + ROPE_GAP + (heads - 1) * hd + rope_cycles(hd)
    kv_out = k_written + 1 + stream(2 * lcfg.kv_heads) + READ_LATENCY
    phase("rope", t + T * (max(rope_written, kv_out) + 2))
    def attention(keys: int) -> int:
        """ATT for one token (cycles from the phase's first): per KV head its job's
        command when the unit is idle (the first in the phase's first cycle); the group's
        query heads read from the phase's first cycle (the first group) or the cycle after
        the previous job's command, quantized one after the other (``Int8QuantStream``:
        a group's first head offered READ_LATENCY after its read), packed into the FIFO (a
        beat readable the cycle after it is written); the job's query load ends with the
        later of its own g·B cycles and the FIFO's last beat of the group, the rest of the
        job runs as its closed form says, its last output beat held ``lanes`` cycles by the
        serializer into the memory; the next command the cycle after."""
        quant = Int8QuantStream(hd, B, banks=2)
        qbeats = ucfg.group * ucfg.beats
        after_load = job_cycles(ucfg, keys) - qbeats + ucfg.lanes     # every job alike
        c, offer = 0, READ_LATENCY
        for _ in range(lcfg.kv_heads):
            last = [quant.vector(offer if h == 0 else 0) for h in range(lcfg.group)][-1]
            c, offer = max(c + qbeats, last + 1) + after_load, c + 1 + READ_LATENCY
        return c

    phase("attention", t + sum(attention(pos + k + 1) for k in range(T)))
    def held(last_in: int, n: int) -> int:
        """T = 1: the act quantizer took its vector's last element in ``last_in``; its
        output pass, held until the matrix's RUN (S + MATRIX_SETUP), gives one element per
        cycle from the later of the two: the cycle of its last element."""
        first_out = last_in + int8quant_cycles(n, B) - 2 * n + 1
        return max(t + MATRIX_SETUP, first_out) + n - 1

    # o: the attention output through the act quantizer (at T = 1 taken as ATT wrote it),
    # a token at a time
    S = t
    if T == 1:
        matrix(mats["o"], last_word(held(S - 1, lcfg.qdim)))
    else:
        # the act quantizer (two banks) takes token t + 1's vector from a reader started the
        # cycle after token t's last element (its first element there before the quantizer
        # receives again)
        qa = int8quant_stream_cycles(lcfg.qdim, T, B, banks=2)
        matrix(mats["o"], last_word(S + READ_LATENCY + qa - 1))
    # NORM2 (one cycle: the reader started), then gate and up; at T = 1 norm 2 took o's
    # rows as they were written (its last element in o's last cycle) and gate follows o
    S = t
    if T == 1:
        matrix(mats["gate"], last_word(S - 1 + rms - H))
    else:
        phase("norm 2", t + 1)
        matrix(mats["gate"], fed(last_word(S + READ_LATENCY + rms - 1), READ_LATENCY + rms))
    matrix(mats["up"])
    # down: SiLU·mul of gate and up through the act quantizer (at T = 1 formed beside up's
    # rows as they were written, its last element SILU_STAGES after up's last row), a
    # token at a time
    S = t
    if T == 1:
        matrix(mats["down"], last_word(held(S - 1 + SILU_STAGES, lcfg.intermediate)))
    else:
        # (token t + 1's products follow token t's through SiLU·mul: the reader restarts
        # once SiLU·mul has taken token t's last element, SILU_STAGES before the quantizer)
        sq = int8quant_stream_cycles(lcfg.intermediate, T, B, banks=2)
        matrix(mats["down"], last_word(S + READ_LATENCY + SILU_STAGES + sq - 1))
    # HOUT, per token; at T = 1 down's rows left on h_out as they were written (the last
    # in down's last row's cycle)
    if T > 1:
        phase("hout", t + T * (READ_LATENCY + H - 1 + 1))
    return {"phases": phases, "total": t - 1}


def weight_beats(lcfg: LayerConfig) -> int:
    """The layer's weight beats (one pass over its seven matrices)."""
    e = lcfg.accel.engine
    return sum(e.tiles(mt.out_features) * mt.groups for mt in lcfg.matrices)


def token_figures(shape: dict, accel, context: int, clock_mhz: float, lanes: int = 16) -> dict:
    """The decoder layers of one decode token at ``context`` on the layer top as built (one
    engine of the accelerator's R rows, the units and the schedule of hw/LAYER.md), by the
    closed form: cycles per layer and per token (all layers; the final norm and lm_head
    are not part of the layer top), the weight stream's share of the cycles, and the
    tokens/s those cycles allow at ``clock_mhz`` (compute alone: the weight and KV streams
    assumed to keep up)."""
    lcfg = LayerConfig.for_model(shape, accel, lanes)
    lc = layer_cycles(lcfg, max(int(context), 1) - 1)
    layers = int(shape["num_hidden_layers"])
    beats = weight_beats(lcfg)
    per_token = lc["total"] * layers
    return {"context": max(int(context), 1), "rows": lcfg.accel.engine.rows, "lanes": lcfg.lanes,
            "cycles_per_layer": lc["total"], "phases": dict(lc["phases"]), "weight_beats_per_layer": beats,
            "weight_stream_utilisation": beats / lc["total"], "layers": layers,
            "cycles_per_token": per_token, "layers_tokens_per_s": clock_mhz * 1e6 / per_token}
