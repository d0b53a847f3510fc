"""The ``tritforge`` quantization method for stock ``transformers`` (5.x).

``import tritforge`` arranges for :func:`register` to run as soon as
``transformers.quantizers.auto`` is imported (or at once if it already is), so that
``AutoModelForCausalLM.from_pretrained(packed_folder)`` (or ``AutoModel``, any class
transformers loads the folder as) finds ``quant_method:
"tritforge"`` in the folder's config.json and uses :class:`TritforgeHfQuantizer`:

* before the weights load, the whole folder is checked (``codec.packedmodel``: config,
  shards, metadata, the SHA-256 of every stored tensor) and every ``nn.Linear`` that has a
  packed matrix (found under the name transformers loads it as: a base model such as
  ``AutoModel``'s ``BertModel`` read from a ``BertForMaskedLM`` folder drops the
  ``bert.`` prefix, :func:`_module_name`) is replaced by a ``codec.tritlinear.TritLinear`` with ``trits`` and
  ``codebook`` buffers of the stored shapes; the loader then fills them (uint8/uint16,
  never cast) and the floating-point tensors as usual;
* after loading, each TritLinear's buffers are compared with the checksums once more;
* ``save_pretrained`` writes the same tensors and the packed metadata back
  (:meth:`TritforgeHfQuantizer.get_state_dict_and_metadata`).

Any problem is a one-line ``TritforgeError``, a ``ValueError``, naming the file.
"""
from __future__ import annotations

from transformers.quantizers.auto import (AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING,
                                          register_quantization_config, register_quantizer)
from transformers.quantizers.base import HfQuantizer
from transformers.utils.quantization_config import QuantizationConfigMixin

QUANT_METHOD = "tritforge"


class TritforgeConfig(QuantizationConfigMixin):
    """``quantization_config`` of a packed model folder (``codec.packedmodel`` documents
    every key)."""

    def __init__(self, format: str = "tritforge-packed", format_version: int = 2, depth=None,
                 depths=None, mode=None, group_size: int = 16, **kwargs):
        self.quant_method = QUANT_METHOD
        self.format = format
        self.format_version = format_version
        self.depth = depth
        if depths is not None:
            self.depths = depths
        self.mode = mode
        self.group_size = group_size

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class TritforgeHfQuantizer(HfQuantizer):
    """Loads packed model folders: TritLinear modules holding the packed trits."""

    requires_calibration = True          # only pre-quantized folders; nothing quantizes on load

    def __init__(self, quantization_config, **kwargs):
        super().__init__(quantization_config, **kwargs)
        self._packed = None
        self._names = {}          #: module name in the model -> module name in the folder

    def _process_model_before_weight_loading(self, model, checkpoint_files=None, **kwargs):
        import os

        from .codec import packedmodel
        from .codec.tritlinear import TritLinear
        from .errors import TritforgeError
        from torch import nn

        if not checkpoint_files:
            raise TritforgeError("tritforge packed model: transformers passed no weight files "
                                 "(load a local packed model folder)")
        folder = os.path.dirname(os.path.abspath(checkpoint_files[0]))
        pm = packedmodel.read_packed_model(folder)
        self._packed = pm
        self._names = {}
        for stored in pm.entries:
            name = _module_name(model, stored)
            self._names[name] = stored
            try:
                old = model.get_submodule(name)
            except AttributeError:
                raise TritforgeError(f"{os.path.join(folder, pm.where[stored + '.trits'])}: packed matrix "
                                     f"{stored} is not a module of {type(model).__name__}") from None
            if not isinstance(old, nn.Linear):
                raise TritforgeError(f"{os.path.join(folder, pm.where[stored + '.trits'])}: {stored} is a "
                                     f"{type(old).__name__}, expected an nn.Linear")
            new = TritLinear(old.in_features, old.out_features, pm.entries[stored], old.bias is not None,
                             device=old.weight.device, dtype=old.weight.dtype,
                             name=f"{os.path.join(folder, pm.where[stored + '.trits'])}: {stored}")
            model.set_submodule(name, new)
        return model

    def _process_model_after_weight_loading(self, model, **kwargs):
        import os

        from .codec import packedmodel
        from .codec.tritlinear import trit_modules
        from .errors import TritforgeError

        pm = self._packed
        for name, m in trit_modules(model).items():
            stored = self._names.get(name, name)
            for part in ("trits", "codebook"):
                t = getattr(m, part)
                if t.device.type == "meta" or packedmodel.tensor_sha256(t) != pm.entries[stored]["sha256"][part]:
                    raise TritforgeError(f"{os.path.join(pm.folder, pm.where[f'{stored}.{part}'])}: tensor "
                                         f"{stored}.{part} did not load intact")
        return model

    def get_state_dict_and_metadata(self, model):
        """The state dict as transformers would save it (tied weights dropped) and the
        packed metadata: the matrices' entries and every tensor's SHA-256."""
        import json

        from transformers.modeling_utils import remove_tied_weights_from_state_dict

        from .codec import packedmodel, packfile
        from .codec.tritlinear import trit_modules

        state = remove_tied_weights_from_state_dict(model.state_dict(), model)
        entries = {n: m.entry() for n, m in trit_modules(model).items()}
        note = self._packed.note if self._packed is not None else {}
        version = max([packedmodel.VERSION] + [packfile.entry_version(e) for e in entries.values()])
        meta = {"packed_format": packedmodel.FORMAT, "packed_format_version": str(version),
                "tensors": json.dumps(entries),
                "sha256": json.dumps({n: packedmodel.tensor_sha256(t) for n, t in state.items()}),
                "model": json.dumps(note)}
        return state, meta

    def is_serializable(self):
        return True

    @property
    def is_trainable(self) -> bool:
        return False


def _module_name(model, stored: str) -> str:
    """The module of ``model`` a packed matrix stored as ``stored`` belongs to: the same
    name, or, where transformers loads a base model from a folder of a model with a head
    (``AutoModel`` on a ``BertForMaskedLM`` folder) or the reverse, that name without or with
    the ``base_model_prefix`` (``bert.``), as transformers renames the weights."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    if not prefix:
        return stored
    has_base = prefix in dict(model.named_children())
    if stored.startswith(prefix + ".") and not has_base:
        return stored[len(prefix) + 1:]
    if has_base and not stored.startswith(prefix + "."):
        try:
            model.get_submodule(stored)
        except AttributeError:
            return f"{prefix}.{stored}"
    return stored


def register() -> None:
    """Register the config and quantizer with transformers (idempotent)."""
    if QUANT_METHOD not in AUTO_QUANTIZATION_CONFIG_MAPPING:
        register_quantization_config(QUANT_METHOD)(TritforgeConfig)
    if QUANT_METHOD not in AUTO_QUANTIZER_MAPPING:
        register_quantizer(QUANT_METHOD)(TritforgeHfQuantizer)


# importing this module first (before transformers.quantizers.auto) also registers
register()
