"""Delivery-report sinks: the callbacks librdkafka calls (inside ``poll``) for each acked or failed message.

A callback only appends to plain lists; :class:`bench.load.core.OpenLoopProducer` drains them into numpy
arrays after each poll, so the per-message Python work is one call with an append or two. Which callback
a producer uses depends on what it must keep:

* ``full``: rate-limited, verify or transactional runs: ack time (the injected clock), librdkafka's latency,
  the 16-byte header (intended time, producer, seq) and the size; in verify mode also (partition, offset,
  header, ack ns); transactional, the partition into ``txn_acked`` (:class:`bench.load.txn.TransactionalSends`);
* ``max``: max rate, every message timed, sizes vary: latency and size;
* ``max_fixed``: the same with a fixed size: latency only;
* ``sampled``: max rate, 1 in N timed (the callback is passed to those messages only): latency only, and
  failures into ``sampled_errors`` (the untimed ones are estimated from them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from bench.load.payload import HEADER_SIZE
from bench.load.schedule import MONOTONIC, Clock

__all__ = ["DeliveryCallback", "DeliverySink", "SinkMode"]

DeliveryCallback = Callable[[Any, Any], None]
SinkMode = Literal["full", "max", "max_fixed", "sampled"]


class DeliverySink:
    """What delivery reports left since the last drain (cleared by the drain), plus error counts."""

    def __init__(self, mode: SinkMode, *, verify: bool = False, clock: Clock = MONOTONIC,
                 transactional: bool = False) -> None:
        if transactional and mode != "full":
            raise ValueError("a transactional producer needs the full delivery sink")
        self.mode: SinkMode = mode
        self.verify = verify
        self.txn_acked: list[int] | None = [] if transactional else None   # partitions acked (transactional)
        self.lat: list[float] = []          # librdkafka's latency (s) of each acked (timed) message
        self.ack_ns: list[int] = []         # full: ack time
        self.heads: list[bytes] = []        # full: the value's header (first 16 bytes)
        self.sizes: list[int] = []          # full, max: value size
        self.errors: dict[str, int] = {}
        self.sampled_errors: dict[str, int] = {}   # failed deliveries among the timed 1-in-N (sampled mode)
        self.verify_acks: list[tuple[int, int, bytes, int]] = []   # partition, offset, header, ack ns
        self.verify_failed: list[tuple[bytes, str]] = []           # header, error name
        self._clock = clock
        self.callback: DeliveryCallback = self._make_callback(mode)

    @classmethod
    def for_run(cls, *, rate_limited: bool, verify: bool, sampled: bool, fixed_size: int | None,
                clock: Clock = MONOTONIC, transactional: bool = False) -> DeliverySink:
        mode: SinkMode = "full" if (rate_limited or verify or transactional) else "sampled" if sampled else \
            "max_fixed" if fixed_size is not None else "max"
        return cls(mode, verify=verify, clock=clock, transactional=transactional)

    def client_config(self) -> dict[str, Any]:
        """What the client's configuration needs: the callback on every message, unless sampled (then
        :attr:`callback` goes to the timed messages' ``produce`` calls only)."""
        return {} if self.mode == "sampled" else {"on_delivery": self.callback}

    def count_error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    def clear(self) -> None:
        self.lat.clear()
        self.ack_ns.clear()
        self.heads.clear()
        self.sizes.clear()

    # -- the callbacks (served inside poll): closures over bound appends, the cheapest Python call ------------
    def _make_callback(self, mode: SinkMode) -> DeliveryCallback:
        lat_app, ack_app, head_app, size_app = self.lat.append, self.ack_ns.append, self.heads.append, \
            self.sizes.append
        ver_app, fail_app = self.verify_acks.append, self.verify_failed.append
        errors = self.sampled_errors if mode == "sampled" else self.errors
        clock, verify = self._clock, self.verify
        txn_app = self.txn_acked.append if self.txn_acked is not None else None

        def full(err: Any, msg: Any) -> None:
            if err is None:
                t = clock()
                ack_app(t)
                lat_app(msg.latency())
                v = msg.value()
                head = v[:HEADER_SIZE]
                head_app(head)
                size_app(len(v))
                if verify:
                    ver_app((msg.partition(), msg.offset(), head, t))
                if txn_app is not None:
                    txn_app(msg.partition())
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1
                if verify:
                    fail_app((msg.value()[:HEADER_SIZE], name))

        def with_size(err: Any, msg: Any) -> None:
            if err is None:
                lat_app(msg.latency())
                size_app(len(msg))
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1

        def latency_only(err: Any, msg: Any) -> None:   # max_fixed and sampled
            if err is None:
                lat_app(msg.latency())
            else:
                name = err.name()
                errors[name] = errors.get(name, 0) + 1

        return full if mode == "full" else with_size if mode == "max" else latency_only
