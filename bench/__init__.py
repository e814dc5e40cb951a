"""Sprig's benchmark suite: Sprig measured side by side with its baselines in one run.

Run ``python -m bench [--quick]`` from the repository root. Every figure is a set of repeated
runs (min/median/max) and a ratio to a baseline measured in the same run on the same echo
handler, so a reader can judge it on a noisy machine. See ``BENCHMARKS.md`` for the results.
"""

from __future__ import annotations
