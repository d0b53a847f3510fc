"""Packed model folder against the FP16 export on CPU: load time, decode tokens/s, resident
memory, and whether they generate the same text.

    .venv/bin/python bench/bench_packed.py OUT/uniform-d2 [--tokens 24] [--threads 1]

OUT/uniform-d2 is a config folder of ``tritforge quantize`` (it holds ``packed/`` and
``model/``). Each variant runs in a fresh subprocess, so its load time and its resident
memory (RSS growth over the interpreter with torch and transformers imported, read from
/proc/self/status) are its own. Variants: the FP16 export loaded as float32, the packed
folder loaded as float32 (weights unpacked on every call), and the packed folder with the
level cache (``codec.tritlinear.cache_levels``). Greedy decoding of the same prompt; tokens/s
over the decode steps only (prefill excluded). Not a test: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

PROMPT = "What is the capital of France? Answer in one sentence."

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
import tritforge
from transformers import AutoModelForCausalLM, AutoTokenizer

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

folder, variant, n_new = sys.argv[1], sys.argv[2], int(sys.argv[4])
base = rss()
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
load_s = time.perf_counter() - t0
extra = {}
if variant == "packed-cached":
    from tritforge.codec.tritlinear import cache_levels
    extra["level_cache_bytes"] = cache_levels(model)
if variant.startswith("packed"):
    from tritforge.codec.tritlinear import packed_bytes
    extra["trit_module_bytes"] = packed_bytes(model)
loaded = rss()
tok = AutoTokenizer.from_pretrained(folder)
msgs = [{"role": "user", "content": sys.argv[5]}]
ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
with torch.no_grad():
    t0 = time.perf_counter()
    out = model(ids, use_cache=True)
    prefill_s = time.perf_counter() - t0
    past, nxt, new = out.past_key_values, out.logits[0, -1].argmax().item(), []
    t0 = time.perf_counter()
    for _ in range(n_new):
        new.append(nxt)
        out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past, nxt = out.past_key_values, out.logits[0, -1].argmax().item()
    decode_s = time.perf_counter() - t0
print(json.dumps({"variant": variant, "load_s": load_s, "resident_bytes": loaded - base,
                  "peak_rss_bytes": rss(), "prefill_s": prefill_s,
                  "decode_tokens_per_s": n_new / decode_s, "text": tok.decode(new, skip_special_tokens=True),
                  **extra}))
"""


def run(folder: str, variant: str, threads: int, tokens: int) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, folder, variant, str(threads), str(tokens), PROMPT],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        sys.exit(f"{variant}: failed\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config_folder")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from tritforge.codec.packedmodel import folder_bytes

    packed, fp16 = os.path.join(args.config_folder, "packed"), os.path.join(args.config_folder, "model")
    rows = [run(fp16, "fp16-export", args.threads, args.tokens),
            run(packed, "packed", args.threads, args.tokens),
            run(packed, "packed-cached", args.threads, args.tokens)]
    sizes = {"packed": folder_bytes(packed), "fp16-export": folder_bytes(fp16)}
    print(f"{'variant':<14} {'disk MB':>8} {'load s':>7} {'resident MB':>11} {'decode tok/s':>12}  text")
    for r in rows:
        disk = sizes["fp16-export" if r["variant"] == "fp16-export" else "packed"]
        print(f"{r['variant']:<14} {disk / 1e6:>8.1f} {r['load_s']:>7.2f} {r['resident_bytes'] / 1e6:>11.1f} "
              f"{r['decode_tokens_per_s']:>12.2f}  {r['text']!r}")
    same = len({r["text"] for r in rows}) == 1
    print(f"same text from all three: {same}; threads {args.threads}, {args.tokens} decode tokens")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "disk_bytes": sizes, "same_text": same}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
