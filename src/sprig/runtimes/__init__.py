"""Language runtimes: the bootstraps that run a user's handler inside a worker process.

Each runtime speaks the Lambda Runtime API (2018-06-01), so the official runtime interface clients
work as well. ``sprig.runtimes.nodejs`` and ``sprig.runtimes.java`` build the argv for their
bootstrap; the Lambda manager (``sprig.functions``) decides when to call them.
"""

from __future__ import annotations
