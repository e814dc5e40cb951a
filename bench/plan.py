"""How much to measure: ``--quick`` (under two minutes) or the full run (under ~15 minutes).

Why a dataclass: every benchmark takes its counts from one place, so the two modes differ in
sample sizes only, never in what is measured.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    quick: bool
    runs: int              # repeated runs of each latency loop (min/median/max over these)
    count: int             # measured round trips per run (small payload)
    warmup: int
    boto3_count: int       # boto3 is slower: fewer calls per run
    concurrent_count: int  # invocations per concurrency run
    sleep_count: int       # invocations per concurrency run with a 10 ms handler
    clients: int           # client threads for the concurrency runs
    colds: int             # cold starts per kind (one fresh function each)
    bare_starts: int       # bare interpreter starts per language
    payload_counts: tuple[tuple[int, int], ...]   # (size bytes, round trips per run)
    many_functions: tuple[int, ...]               # deployed-function counts for core RSS


QUICK = Plan(quick=True, runs=3, count=300, warmup=30, boto3_count=150, concurrent_count=300,
             sleep_count=60, clients=4, colds=3, bare_starts=5,
             payload_counts=((1024, 150), (65536, 60), (1048576, 10)),
             many_functions=(20, 100))
FULL = Plan(quick=False, runs=5, count=2000, warmup=100, boto3_count=600, concurrent_count=1500,
            sleep_count=200, clients=4, colds=10, bare_starts=20,
            payload_counts=((1024, 1000), (65536, 300), (1048576, 40)),
            many_functions=(20, 100))
