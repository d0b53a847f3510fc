"""The typed documents tritforge reads and writes, one pydantic model per document kind.

Every document is checked here before anything else uses it, and each module is the one
owner of its document's schema:

* ``limits``      what any JSON input may hold at all (size, nesting, string, number and
                  list sizes), checked while it is parsed;
* ``validation``  the shared field types and the one-line rendering of a validation error,
                  ``<file>: <field path>: expected ..., got ...``;
* ``hwconfig``    the engine's ``HwConfig`` (a HwConfig JSON, a generate sidecar);
* ``accelconfig`` the attention and vector units' parameters and ``AccelConfig``;
* ``packfile``    the packed file's metadata (per-matrix entries, the model note);
* ``modelshape``  the fields of an HF ``config.json`` the estimator and the loader use;
* ``board``       a board description (``sim/data/boards/*.toml``): figures, their sources,
                  the ``[memory]`` table;
* ``energytable`` an action-energy table (``sim/data/energy/*.toml``): primitives, rows,
                  memory energies, each with its source;
* ``result``      the run-result document that ``run`` and ``estimate`` write and
                  ``report`` renders.

The frozen dataclasses (``HwConfig``, ``AccelConfig``, ...) stay the in-memory objects;
they are built from, and checked by, these models.
"""
