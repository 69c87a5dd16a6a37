"""Queued faults, applied to the next matching signed DMS calls in FIFO order."""

import threading

# Faults answered instead of the operation (the operation is not applied).
BEFORE = ("throttle", "500", "503", "html502", "drop_before")
# Faults that let the operation apply and then spoil or withhold its answer.
AFTER = ("drop_after", "malformed", "truncated", "oversized")
# Faults that answer a read as DMS's eventually consistent reads may: with an older view.
LAGGING = ("stale",)
KINDS = BEFORE + ("delay",) + AFTER + LAGGING
# The operations a lagging fault applies to (the first is the default): StartReplication
# and StopReplication change a replication, never its config, so only
# DescribeReplications has an older view to show.
LAGGING_OPERATIONS = ("DescribeReplications",)
DEFAULT_OVERSIZED_BYTES = 16 * 1024 * 1024


class Fault:
    def __init__(self, kind, operation="*", count=1, seconds=0.0, size=DEFAULT_OVERSIZED_BYTES):
        self.kind = kind
        self.operation = operation
        self.count = count
        self.seconds = seconds
        self.size = size

    @classmethod
    def from_request(cls, spec):
        """Build a fault from the admin request body; raises ValueError when it is invalid."""
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object")
        kind = spec.get("fault")
        if kind not in KINDS:
            raise ValueError(f"fault must be one of {', '.join(KINDS)}")
        operation = spec.get("operation", LAGGING_OPERATIONS[0] if kind in LAGGING else "*")
        count = spec.get("count", 1)
        seconds = spec.get("seconds", 0.0)
        size = spec.get("bytes", DEFAULT_OVERSIZED_BYTES)
        if not isinstance(operation, str) or not operation:
            raise ValueError("operation must be an operation name or \"*\"")
        if kind in LAGGING and operation not in LAGGING_OPERATIONS:
            raise ValueError(f"fault {kind} applies to {' or '.join(LAGGING_OPERATIONS)} only")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("count must be an integer >= 1")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("seconds must be a number >= 0")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("bytes must be an integer >= 0")
        return cls(kind, operation, count, float(seconds), size)

    def matches(self, operation):
        return self.operation in ("*", operation)

    def describe(self):
        item = {"fault": self.kind, "operation": self.operation, "count": self.count}
        if self.kind == "delay":
            item["seconds"] = self.seconds
        if self.kind == "oversized":
            item["bytes"] = self.size
        return item


class FaultQueue:
    def __init__(self):
        self._lock = threading.Lock()
        self._queue = []

    def add(self, fault):
        with self._lock:
            self._queue.append(fault)

    def clear(self):
        with self._lock:
            self._queue.clear()

    def pending(self):
        with self._lock:
            return [fault.describe() for fault in self._queue]

    def take(self, operation):
        """Consume one use of the oldest fault matching `operation`; None when none does."""
        with self._lock:
            for fault in self._queue:
                if fault.matches(operation):
                    fault.count -= 1
                    if fault.count == 0:
                        self._queue.remove(fault)
                    return fault
        return None
