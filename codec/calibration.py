"""Calibration data for the ``calibrated`` mode and the input statistics it needs.

Text
    The bundled English text (``sim/data/eval_text.txt``, 2,578 SmolLM2 tokens) by default,
    or the user's UTF-8 text file (``tritforge quantize --calib FILE``). The token ids (no
    special tokens) are cut into ``seqs`` non-overlapping sequences of ``length`` tokens,
    spread evenly over the text; each runs from an empty context. Refused with a one-line
    ``TritforgeError``: a file that cannot be read, is empty (or only white space), is not
    UTF-8 text (invalid UTF-8 or NUL bytes), is shorter than one sequence, or holds fewer
    than ``seqs`` sequences.

Statistics
    For every linear matrix, ``H = X^T X / n`` over the n calibration tokens X of its input
    (fp32 sums, the GPTQ paper's Hessian up to the factor 2, arXiv 2210.17323 section 3).
    Matrices that read the same input share one H: q/k/v read the attention block's
    normalized input and gate/up the MLP block's (``SHARED``), so a Llama/Qwen2 layer needs
    four. ``inputs="float"`` (default): they are captured with forward pre-hooks in one pass
    of the floating-point model over the calibration sequences, once for every requested
    depth. ``inputs="sequential"`` (GPTQ's layer-by-layer order, arXiv 2210.17323 section 5
    and its reference implementation): layer l's H are captured from the inputs that the
    already quantized layers 0 .. l-1 produce, layer l is quantized and its dequantized
    weights put in place, and its outputs become layer l+1's inputs; the decoder layers run
    one at a time on cached hidden states (two layer passes per layer and depth), so the
    H, and the pass, are per depth.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import TritforgeError
from .calibrate import CHOICES, CODEBOOKS, DEFAULT_DAMP, ORDERS

#: the bundled text: sim/data next to codec/ (both in the repository and when installed)
DEFAULT_TEXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "sim", "data", "eval_text.txt")
DEFAULT_SEQS = 5
DEFAULT_LENGTH = 512
INPUTS = ("float", "sequential")
#: module -> the module whose input (and H) it shares
SHARED = {"k_proj": "q_proj", "v_proj": "q_proj", "up_proj": "gate_proj"}


@dataclass(frozen=True)
class CalibOptions:
    """What the calibrated mode is calibrated on and how it runs."""

    text: str
    source: str                      #: the file read, for reports
    seqs: int = DEFAULT_SEQS
    length: int = DEFAULT_LENGTH
    damp: float = DEFAULT_DAMP
    order: str = "act-groups"
    choice: str = "hessian"
    codebook: str = "tritforge"
    inputs: str = "float"            #: "float" or "sequential" (see the module docstring)

    def describe(self) -> dict:
        return {"text": self.source, "seqs": self.seqs, "length": self.length,
                "damp": self.damp, "order": self.order, "choice": self.choice,
                "codebook": self.codebook, "inputs": self.inputs}


def read_text(path: str, what: str = "--calib") -> str:
    """A UTF-8 text file's content; one-line errors for unreadable, empty or non-text files."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise TritforgeError(f"{what} {path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TritforgeError(f"{what} {path}: not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} "
                             f"at offset {exc.start})") from None
    if "\x00" in text:
        raise TritforgeError(f"{what} {path}: not UTF-8 text (NUL byte at offset {text.index(chr(0))})")
    if not text.strip():
        raise TritforgeError(f"{what} {path}: empty; expected UTF-8 text")
    return text


def make_options(path: str | None = None, seqs: int = DEFAULT_SEQS, length: int = DEFAULT_LENGTH,
                 damp: float = DEFAULT_DAMP, order: str = "act-groups", choice: str = "hessian",
                 codebook: str = "tritforge", inputs: str = "float") -> CalibOptions:
    """Checked options; ``path=None`` takes the bundled text."""
    if seqs < 1:
        raise TritforgeError(f"--calib-seqs {seqs}: expected at least 1")
    if length < 2:
        raise TritforgeError(f"--calib-len {length}: expected at least 2 tokens")
    if not (damp == damp and 0 <= damp < float("inf")):
        raise TritforgeError(f"--calib-damp {damp}: expected a finite fraction >= 0")
    for value, allowed, what in ((order, ORDERS, "--calib-order"), (choice, CHOICES, "choice"),
                                 (codebook, CODEBOOKS, "codebook"), (inputs, INPUTS, "--calib-inputs")):
        if value not in allowed:
            raise TritforgeError(f"{what} {value!r}: expected one of {', '.join(allowed)}")
    if path is None:
        text = read_text(DEFAULT_TEXT, "bundled calibration text")
        source = "sim/data/eval_text.txt"
    else:
        text = read_text(path)
        source = path
    return CalibOptions(text, source, seqs, length, damp, order, choice, codebook, inputs)


def calibration_ids(tokenizer, opts: CalibOptions):
    """(seqs, length) int64 token ids spread evenly over the text."""
    import torch

    ids = tokenizer(opts.text, add_special_tokens=False)["input_ids"]
    n = len(ids)
    where = "the bundled text" if opts.source == "sim/data/eval_text.txt" else f"--calib {opts.source}"
    if n < opts.length:
        raise TritforgeError(f"{where}: {n} tokens, shorter than one sequence of "
                             f"--calib-len {opts.length}")
    fits = n // opts.length
    if opts.seqs > fits:
        raise TritforgeError(f"--calib-seqs {opts.seqs}: {where} holds {n} tokens, "
                             f"at most {fits} sequences of --calib-len {opts.length}")
    starts = [round(i * (n - opts.length) / max(1, opts.seqs - 1)) for i in range(opts.seqs)]
    if opts.seqs == 1:
        starts = [0]
    # evenly spread starts may overlap when seqs * length is close to n: fall back to tiling
    if any(b - a < opts.length for a, b in zip(starts, starts[1:])):
        starts = [i * opts.length for i in range(opts.seqs)]
    return torch.tensor([ids[s:s + opts.length] for s in starts], dtype=torch.long)


def float_model(ckpt):
    """The stock transformers model of ``ckpt`` in fp32 (eval mode), for the calibration pass."""
    return ckpt.float_model()


def shared_name(name: str, names=None) -> str:
    """The matrix whose input ``name`` reads: q_proj / gate_proj of its block for k/v and up
    (``SHARED``), else itself; with ``names``, only a partner that is among them."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[-2] in SHARED:
        parts[-2] = SHARED[parts[-2]]
    partner = ".".join(parts)
    return partner if names is None or partner in names else name


def _blocks(names: list[str]):
    """(path of the decoder blocks' ModuleList, block index -> its names) from weight names."""
    import re

    by_block: dict[int, list[str]] = {}
    prefixes = set()
    for n in names:
        m = re.match(r"^(.*?)\.(\d+)\.", n)
        if not m:
            raise TritforgeError(f"{n}: not inside a numbered decoder block; "
                                 "--calib-inputs sequential needs one")
        prefixes.add(m.group(1))
        by_block.setdefault(int(m.group(2)), []).append(n)
    if len(prefixes) != 1:
        raise TritforgeError(f"matrices in {len(prefixes)} block lists ({', '.join(sorted(prefixes))}); "
                             "--calib-inputs sequential needs one")
    return prefixes.pop(), by_block


class _Capture:
    """Forward pre-hooks that add ``X^T X`` of each key module's input (fp32)."""

    def __init__(self, model, keys, diagonal: bool = False):
        import torch

        self.acc, self.hooks = {}, []
        for key in keys:
            module_name = key[: -len(".weight")] if key.endswith(".weight") else key
            try:
                module = model.get_submodule(module_name)
            except AttributeError:
                self.remove()
                raise TritforgeError(f"{key}: no such module in the model") from None

            def hook(module, args, key=key):
                x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
                h, n = self.acc.get(key, (None, 0))
                if diagonal:              # diag(X^T X) only: the input energy per channel
                    h = (x * x).sum(0) if h is None else h.add_((x * x).sum(0))
                else:
                    if h is None:
                        h = torch.zeros((x.shape[1], x.shape[1]), dtype=torch.float32)
                    h.addmm_(x.T, x)
                self.acc[key] = (h, n + x.shape[0])
            self.hooks.append(module.register_forward_pre_hook(hook))

    def remove(self):
        for h in self.hooks:
            h.remove()
        self.hooks = []

    def result(self, names) -> dict:
        out = {}
        for key in {shared_name(n, names) for n in names}:
            if key not in self.acc:
                raise TritforgeError(f"{key}: the calibration pass never reached this layer")
            h, n = self.acc[key]
            out[key] = h.div_(n)
        return {n: out[shared_name(n, names)] for n in names}


def collect_hessians(model, ids, names: list[str], progress: bool = True,
                     diagonal: bool = False) -> dict:
    """``name -> H`` (torch fp32, in x in) for every weight name, from one pass over ``ids``;
    ``diagonal``: only diag(H) (in,), the mean squared input per channel.

    Matrices sharing an input share the same tensor object.
    """
    import torch
    from tqdm import tqdm

    cap = _Capture(model, sorted({shared_name(n, names) for n in names}), diagonal)
    try:
        with torch.no_grad():          # not inference_mode: H is divided in place afterwards
            for row in tqdm(ids, desc="calibration", unit="seq", disable=not progress, leave=False):
                model(input_ids=row[None], use_cache=False)
    finally:
        cap.remove()
    return cap.result(names)


class _Stop(Exception):
    pass


def _layer_inputs(first, model, ids):
    """Hidden states and keyword arguments entering the first decoder block, per sequence."""
    import torch

    caught = []

    def hook(module, args, kwargs):
        caught.append((args[0].detach().clone(), dict(kwargs)))
        raise _Stop

    h = first.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for row in ids:
                try:
                    model(input_ids=row[None], use_cache=False)
                except _Stop:
                    pass
    finally:
        h.remove()
    return caught


def sequential_pass(model, ids, names: list[str], quantize_layer, progress: bool = True) -> None:
    """Quantize layer by layer on the inputs the already quantized layers produce.

    ``quantize_layer(layer_names, hessians)`` returns ``name -> TritTensor`` for that layer's
    matrices; their dequantized values are written into ``model`` before the layer's
    outputs are computed for the next layer.
    """
    import torch
    from tqdm import tqdm

    prefix, by_layer = _blocks(names)
    try:
        layers = model.get_submodule(prefix)
    except AttributeError:
        raise TritforgeError(f"{prefix}: no such module list in the model") from None
    states = _layer_inputs(layers[0], model, ids)

    def run(layer):
        out = []
        for x, kw in states:
            y = layer(x, **kw)
            out.append(((y[0] if isinstance(y, tuple) else y).detach(), kw))
        return out

    with torch.no_grad():
        for i in tqdm(range(len(layers)), desc="sequential calibration", unit="layer",
                      disable=not progress, leave=False):
            mine = by_layer.get(i, [])
            if mine:
                cap = _Capture(model, sorted({shared_name(n, mine) for n in mine}))
                try:
                    run(layers[i])
                finally:
                    cap.remove()
                for name, t in quantize_layer(mine, cap.result(mine)).items():
                    model.get_parameter(name).copy_(torch.from_numpy(t.dequantize()))
            states = run(layers[i])


def checkpoint_hessians(ckpt, names: list[str], opts: CalibOptions, progress: bool = True) -> tuple[dict, dict]:
    """Hessians of ``names`` from ``ckpt``'s float model on ``opts``' text, and a record."""
    import time

    t0 = time.perf_counter()
    ids = calibration_ids(ckpt.tokenizer(), opts)
    model = float_model(ckpt)
    try:
        hessians = collect_hessians(model, ids, names, progress)
    finally:
        del model
    info = {**opts.describe(), "tokens": int(ids.numel()),
            "forward_seconds": time.perf_counter() - t0}
    return hessians, info


def input_energy(ckpt, names: list[str], opts: CalibOptions, progress: bool = True) -> tuple[dict, dict]:
    """``name -> diag(H)`` (numpy float32 (in,): the mean squared input of every channel) of
    ``names`` from ``ckpt``'s float model on ``opts``' text, and a record: the sensitivities
    of the mixed configurations (``codec.mixeddepth``)."""
    import time

    t0 = time.perf_counter()
    ids = calibration_ids(ckpt.tokenizer(), opts)
    model = float_model(ckpt)
    try:
        diag = collect_hessians(model, ids, names, progress, diagonal=True)
    finally:
        del model
    info = {"text": opts.source, "seqs": opts.seqs, "length": opts.length,
            "tokens": int(ids.numel()), "forward_seconds": time.perf_counter() - t0}
    return {n: h.numpy() for n, h in diag.items()}, info


def weight_fisher(ckpt, names: list[str], opts: CalibOptions, progress: bool = True) -> tuple[dict, dict]:
    """``name -> F`` (numpy float32 (out, in)): the empirical Fisher diagonal of every weight,
    the mean over the calibration sequences of the squared gradient of the sequence's
    next-token loss (mean cross-entropy) -- ``F_ij (dw_ij)**2 / 2`` approximates the loss a
    weight change adds, across layers as well as within one (SqueezeLLM, arXiv 2306.07629,
    section 4.1). One forward and backward pass per sequence; a record as ``input_energy``."""
    import time

    import torch
    from tqdm import tqdm

    t0 = time.perf_counter()
    ids = calibration_ids(ckpt.tokenizer(), opts)
    model = float_model(ckpt)
    try:
        params = {}
        for n in names:
            try:
                params[n] = model.get_parameter(n)
            except AttributeError:
                raise TritforgeError(f"{n}: no such parameter in the model") from None
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        acc = {n: torch.zeros_like(p) for n, p in params.items()}
        for row in tqdm(ids, desc="fisher", unit="seq", disable=not progress, leave=False):
            model.zero_grad(set_to_none=True)
            out = model(input_ids=row[None], labels=row[None], use_cache=False)
            out.loss.backward()
            for n, p in params.items():
                acc[n].addcmul_(p.grad, p.grad)
        fisher = {n: (a / len(ids)).numpy() for n, a in acc.items()}
    finally:
        del model
    info = {"text": opts.source, "seqs": opts.seqs, "length": opts.length,
            "tokens": int(ids.numel()), "forward_backward_seconds": time.perf_counter() - t0}
    return fisher, info
