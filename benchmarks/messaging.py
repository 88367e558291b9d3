"""1. Actor messaging throughput: tradeactors' BaseActor vs raw pykka tell vs raw queue.Queue.

    python benchmarks/messaging.py [--messages 100000] [--rounds 3]

Two measures, each over N messages (a frozen msgspec Struct, built once) to one
consumer that counts them:
- drain: the consumer is held by a gate while all N are told, then released; the
  clock runs from the release until an ask queued behind the N returns. This is
  the consumer's per-message cost alone, and stable run to run.
- stream: one producer thread tells while the consumer handles; the clock stops
  when the ask queued after the last message returns. On two busy cores this
  mostly measures how the GIL passes between the two threads, so it is noisy.
The variants run interleaved, `--rounds` times each; the tables show medians.
Last, the handler alone: `on_receive` called in a loop in one thread (no
mailbox, no thread switch), raw pykka actor vs BaseActor: what BaseActor adds
per message, without the noise of two threads.
Target: BaseActor drain rate >= 80 % of raw pykka's.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
import timeit
from collections.abc import Callable
from typing import Any

import _common
import pykka

from actors.base import Address, BaseActor
from actors.clock import VirtualClock
from actors.messages import Ping, Resume

MESSAGE = Resume()


def raw_queue(n: int, drain: bool) -> float:
    inbox: queue.Queue[Any] = queue.Queue()
    gate = threading.Event()

    def consume() -> None:
        gate.wait()
        for _ in range(n):
            inbox.get()

    consumer = threading.Thread(target=consume)
    consumer.start()
    if not drain:
        gate.set()
    start = time.perf_counter()
    for _ in range(n):
        inbox.put(MESSAGE)
    if drain:
        start = time.perf_counter()
        gate.set()
    consumer.join()
    return n / (time.perf_counter() - start)


class RawCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, threading.Event):
            message.wait()
        self.count += 1
        return None


class Counter(BaseActor):
    def __init__(self) -> None:
        super().__init__("bench", VirtualClock())
        self.count = 0

    def receive(self, message: Any) -> Any:
        if isinstance(message, threading.Event):  # the benchmark's gate, not a real message
            message.wait()
        self.count += 1
        return None


def _through(ref: pykka.ActorRef[Any], tell: Callable[[Any], None], n: int, drain: bool) -> float:
    gate = threading.Event()
    if drain:
        ref.tell(gate)
    start = time.perf_counter()
    for _ in range(n):
        tell(MESSAGE)
    done = ref.ask(Ping(), block=False)
    if drain:
        start = time.perf_counter()
        gate.set()
    done.get(timeout=600)
    elapsed = time.perf_counter() - start
    ref.stop()
    return n / elapsed


def raw_pykka(n: int, drain: bool) -> float:
    ref = RawCounter.start()
    return _through(ref, ref.tell, n, drain)


def base_actor(n: int, drain: bool) -> float:
    ref = Counter.start()
    return _through(ref, ref.tell, n, drain)


def base_actor_address(n: int, drain: bool) -> float:
    ref = Counter.start()
    return _through(ref, Address("bench", ref).tell, n, drain)


def handler_ns(calls: int = 200_000) -> dict[str, float]:
    """Best of 5 loops of `on_receive(MESSAGE)` on an actor object (not started), in ns."""
    out = {}
    for name, actor in (("raw", RawCounter()), ("base", Counter())):
        best = min(timeit.repeat(lambda a=actor: a.on_receive(MESSAGE), number=calls, repeat=5))
        out[name] = best / calls * 1e9
    return out


VARIANTS: dict[str, Callable[[int, bool], float]] = {
    "queue.Queue put/get": raw_queue,
    "raw pykka tell": raw_pykka,
    "BaseActor tell": base_actor,
    "BaseActor via Address": base_actor_address,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    medians: dict[str, dict[str, float]] = {}
    for mode in ("drain", "stream"):
        rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, variant in VARIANTS.items():
                rates[name].append(variant(args.messages, mode == "drain"))
        medians[mode] = {name: statistics.median(r) for name, r in rates.items()}
    print(f"{args.messages:,} messages to one consumer; median of {args.rounds} rounds")
    rows = []
    for name in VARIANTS:
        drain, stream = medians["drain"][name], medians["stream"][name]
        rows.append(
            (
                name,
                drain,
                drain / medians["drain"]["raw pykka tell"],
                stream,
                stream / medians["stream"]["raw pykka tell"],
            )
        )
    print(
        _common.table(
            ["variant", "drain msg/s", "vs pykka", "stream msg/s", "vs pykka"],
            rows,
        )
    )
    handler = handler_ns()
    print(
        f"on_receive alone: raw pykka actor {handler['raw']:.0f} ns, BaseActor "
        f"{handler['base']:.0f} ns per message (+{handler['base'] - handler['raw']:.0f} ns)"
    )
    drain = medians["drain"]
    _common.result(
        "messaging",
        base_actor_vs_pykka=drain["BaseActor tell"] / drain["raw pykka tell"],
        address_vs_pykka=drain["BaseActor via Address"] / drain["raw pykka tell"],
        pykka_vs_queue=drain["raw pykka tell"] / drain["queue.Queue put/get"],
        stream_base_actor_vs_pykka=medians["stream"]["BaseActor tell"]
        / medians["stream"]["raw pykka tell"],
        handler_ns=handler,
        rates=medians,
    )


if __name__ == "__main__":
    main()
