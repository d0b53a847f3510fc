"""Model-driver benchmark: SmolLM2-135M-Instruct through the simulated hardware (prints figures).

Measures on this machine, for d = 2 (tritllm-v2) on a board preset (default: the default board):

1. load (transformers, GGUF) and quantization of the 210 linear matrices;
2. prefill of a chat prompt through the hardware path (wall time, and simulated cycles);
3. wall time per generated token (greedy decode, ``--tokens`` tokens), split into the
   time spent in the simulated layers (int8 activations, vectorized cycle model, rescale:
   ``HwLinear.hardware``) and the rest of the stock model (attention, norms, lm_head);
4. for comparison, the same decode with the float dequantized weights (no simulation).

Not a test: nothing is asserted except that generation runs. Run:
``.venv/bin/python bench/bench_driver.py [--tokens N] [--board NAME]`` (or ``make bench``).
"""
from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=16, help="tokens to generate (default 16)")
    ap.add_argument("--board", default="default", help="board preset (default: the default board)")
    ap.add_argument("--prompt", default="Write one sentence about the sea.")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1, as tritforge run)")
    args = ap.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        return measure(args)


def measure(args) -> int:
    from tritforge.sim import boards, driver, generation, patching
    from tritforge.sim.hwlinear import HwLinear, HwRecorder

    board = boards.get_board(args.board)
    cfg = board.hwconfig(2)
    t0 = time.perf_counter()
    model, tok, where = driver.load_model("default")
    t_load = time.perf_counter() - t0
    linears = patching.linear_layers(model)
    t0 = time.perf_counter()
    tensors = patching.quantize_layers(linears, 2, "tritllm-v2", progress=False)
    t_quant = time.perf_counter() - t0
    weights = sum(t.shape[0] * t.shape[1] for t in tensors.values())
    rec = HwRecorder(cfg, error_phases=())
    patching.patch_model(model, tensors, rec)

    hw_time = [0.0]
    real = HwLinear.hardware

    def timed(self, x):
        t = time.perf_counter()
        try:
            return real(self, x)
        finally:
            if self.recorder.phase == "decode":
                hw_time[0] += time.perf_counter() - t

    HwLinear.hardware = timed
    # warm-up (prepares the cycle model's per-matrix cache), then the measured run
    generation.generate(model, tok, rec, "Hi", 2, progress=False)
    hw_time[0] = 0.0
    gen = generation.generate(model, tok, rec, args.prompt, args.tokens, progress=False)
    hw_decode = hw_time[0]
    HwLinear.hardware = real
    prefill_cycles = sum(st.cycles for st in rec.phase_stats("prefill").values())
    decode_cycles = sum(st.cycles for st in rec.phase_stats("decode").values()) / gen.decode_steps

    rec.set_mode("dequant")
    ref = generation.generate(model, tok, rec, args.prompt, args.tokens, progress=False)
    rec.set_mode("hw")

    steps = gen.decode_steps
    print(f"model            {where} ({len(tensors)} matrices, {weights / 1e6:.1f} M weights)")
    print(f"hardware         {board.name}: R={cfg.rows}, T={cfg.vectors}, d=2, {cfg.clock_mhz:g} MHz; "
          f"{args.threads} CPU thread(s)")
    print(f"load             {t_load:8.2f} s")
    print(f"quantize         {t_quant:8.2f} s   ({weights / t_quant / 1e6:.1f} M weights/s)")
    print(f"prefill          {gen.prefill_wall_s:8.3f} s wall for {len(gen.prompt_ids)} prompt tokens "
          f"({prefill_cycles:,} simulated cycles)")
    print(f"decode           {gen.decode_wall_s / steps:8.3f} s wall per generated token "
          f"({steps} steps, {decode_cycles:,.0f} simulated cycles per token)")
    print(f"  in HwLinear    {hw_decode / steps:8.3f} s of it in the 210 simulated layers "
          f"(int8 activations + cycle model + rescale)")
    print(f"float reference  {ref.decode_wall_s / max(ref.decode_steps, 1):8.3f} s per token "
          f"(dequantized weights, stock nn.functional.linear)")
    print(f"generated        {gen.text!r}")
    print(f"RESULT wall_s_per_token={gen.decode_wall_s / steps:.3f} "
          f"float_s_per_token={ref.decode_wall_s / max(ref.decode_steps, 1):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
