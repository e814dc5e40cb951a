"""The Lambda manager: configuration, runtimes, worker pools and invocation.

* :mod:`~sprig.functions.config` — ``LambdaConfig`` from a component's Greengrass keys;
* :mod:`~sprig.functions.runtimes` — runtime names → how to start a worker on this device;
* :mod:`~sprig.functions.pool` — the pure pool policy (queue, workers, reaping);
* :mod:`~sprig.functions.worker` — ``FunctionSpec``, the worker environment and process;
* :mod:`~sprig.functions.function` — ``Function``: one deployed function at run time;
* :mod:`~sprig.functions.manager` — ``FunctionManager``, the :class:`Invoker` of the core;
* :mod:`~sprig.functions.invocation`, :mod:`~sprig.functions.errors` — shared contracts.

Nothing is imported here: callers import the module they need (``invocation`` stays light).
"""

from __future__ import annotations
