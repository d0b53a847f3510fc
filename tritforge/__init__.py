"""tritforge: hardware co-design simulator and RTL generator for balanced-ternary LLMs.

The user-facing folders map under this one import package:
``codec/`` -> ``tritforge.codec``, ``hw/`` -> ``tritforge.hw``, ``sim/`` -> ``tritforge.sim``,
``fpga/`` -> ``tritforge.fpga``.
"""

__version__ = "0.1.0"


def _register_with_transformers() -> None:
    """Make ``AutoModelForCausalLM.from_pretrained`` load tritforge packed model folders.

    Importing transformers is slow, so ``import tritforge`` does not: if
    ``transformers.quantizers.auto`` is already imported, the quantizer is registered now
    (``tritforge.hfquantizer.register``); otherwise a one-shot import hook registers it
    right after transformers imports that module.
    """
    import sys

    name = "transformers.quantizers.auto"
    if name in sys.modules:
        from . import hfquantizer

        hfquantizer.register()
        return

    class _Hook:
        def find_spec(self, fullname, path, target=None):
            if fullname != name:
                return None
            sys.meta_path.remove(self)
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(fullname, path, target) if find else None
                if spec is not None:
                    break
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_register(module):
                exec_module(module)
                if "tritforge.hfquantizer" in sys.modules:
                    return      # being imported: it registers itself at the end of its body
                from . import hfquantizer

                hfquantizer.register()

            spec.loader.exec_module = exec_and_register
            return spec

    sys.meta_path.insert(0, _Hook())


_register_with_transformers()
