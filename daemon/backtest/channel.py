"""The lockstep inbox: the :class:`actors.channels.Channel` interface over a plain list.

In a backtest nothing runs concurrently: the runner drains each inbox itself (it takes
the list :attr:`LockstepChannel.items` whole and leaves a fresh empty one, or calls
:meth:`LockstepChannel.take`) and hands the batch to the actor's ``handle_batch``.  So
the inbox never needs to wait or to apply back-pressure: it is unbounded, never
conflates (a backtest must see every message) and ``send`` never suspends.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from actors.channels import Channel, ChannelStats
from actors.messages import Message


class LockstepChannel(Channel[Message]):
    """An unbounded FIFO drained by the backtest runner, never by a task."""

    def __init__(
        self,
        name: str,
        capacity: int = 4096,
        conflate_key: Callable[[Message], Hashable | None] | None = None,
    ) -> None:
        # No memory stream: only the counters and the queue (conflation never applies here).
        self.name = name
        self.capacity = capacity
        self.items: list[Message] = []
        self.sent = 0
        self.received = 0
        self.conflated = 0
        self.blocked_sends = 0

    def send_nowait(self, item: Message) -> bool:
        self.items.append(item)
        return True

    async def send(self, item: Message) -> None:
        self.items.append(item)

    def take(self) -> list[Message]:
        """Everything queued, oldest first, leaving the inbox empty."""
        batch = self.items
        self.items = []
        n = len(batch)
        self.sent += n
        self.received += n
        return batch

    async def receive_batch(self, max_items: int = 1024) -> list[Message]:
        if not self.items:
            raise RuntimeError(f"{self.name}: a lockstep inbox is drained by the backtest runner only")
        return self.take()

    def close(self) -> None:
        pass

    def depth(self) -> int:
        return len(self.items)

    def statistics(self) -> ChannelStats:
        return ChannelStats(
            name=self.name,
            capacity=self.capacity,
            depth=len(self.items),
            sent=self.sent + len(self.items),
            received=self.received,
            conflated=0,
            blocked_sends=0,
        )
