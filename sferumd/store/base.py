"""The store interface the services use. A PostgreSQL store implements the same methods.

Writes are group-committed: ``append`` and ``set_receipt`` return futures that resolve only
after the transaction holding them has committed. Positions are assigned by the caller
(the services own ordering), and writes commit in the order they were submitted, so the
store's commit listener sees events in position order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sferumd.model import (
    CodeWindow,
    Device,
    DeviceInfo,
    Event,
    Journal,
    Link,
    LinkSession,
    NewDevice,
    Profile,
    StoredCode,
    User,
)

TxnKey = tuple[str, str]  # (device id, client transaction id)
CommitListener = Callable[[Sequence[Event]], None]


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # Start-up: the highest stored position and every room's current state events.
    async def load(self) -> tuple[int, list[Event]]: ...

    # The listener gets each commit's new events in position order.
    def set_commit_listener(self, listener: CommitListener) -> None: ...

    # Group-committed writes. ``append`` resolves to the stored event, or, when ``txn`` was
    # already used, to the original event of that transaction (the new one is dropped).
    def append(self, event: Event, txn: TxnKey | None = None) -> Awaitable[Event]: ...
    # Resolves to whether the read marker moved forward (it never moves back).
    def set_receipt(self, room_id: str, user_id: str, pos: int) -> Awaitable[bool]: ...
    def barrier(self) -> Awaitable[None]: ...  # after everything submitted before it commits

    # Reads.
    async def room_events(
        self, room_id: str, after: int, upto: int, limit: int
    ) -> list[Event]: ...  # the newest ``limit`` events with after < pos <= upto, ascending
    async def get_event(self, event_id: str) -> Event | None: ...
    async def find_txn(self, key: TxnKey) -> Event | None: ...
    async def member_history(self, user_id: str, upto: int) -> list[Event]: ...
    async def receipts(self, user_id: str) -> dict[str, int]: ...
    async def unread_count(self, room_id: str, user_id: str, after: int) -> int: ...

    # Accounts.
    async def device_for_token(self, token: str) -> Device | None: ...
    async def get_user(self, user_id: str) -> User | None: ...
    async def list_devices(self, user_id: str) -> list[DeviceInfo]: ...  # live ones only
    # Account writes, group-committed like events.
    def update_profile(self, user_id: str, profile: Profile) -> Awaitable[None]: ...
    def revoke_device(self, user_id: str, device_id: str) -> Awaitable[bool]: ...
    def touch_device(self, device_id: str) -> Awaitable[None]: ...

    # Sign-in codes; the policy comes from services.auth as the callables.
    def issue_code(
        self,
        phone: str,
        address: str,
        code_hash: str,
        now: int,
        expires: int,
        decide: Callable[[CodeWindow], Any],
    ) -> Awaitable[Any]: ...
    def forget_code(self, phone: str, code_hash: str) -> Awaitable[None]: ...
    def verify_code(
        self,
        phone: str,
        judge: Callable[[StoredCode | None], str],
        device_name: str | None,
    ) -> Awaitable[tuple[str, StoredCode | None, NewDevice | None]]: ...

    # journals and links
    async def get_journal(self, journal_id: str) -> Journal | None: ...
    def remember_nonce(
        self, journal_id: str, nonce: str, now_ts: int, expires_ts: int
    ) -> Awaitable[bool]: ...
    def add_link_session(
        self,
        session: LinkSession,
        token_hash: str,
        *,
        limit: int,
        window_start_ts: int,
        purge_before_ts: int,
    ) -> Awaitable[int | None]: ...
    async def link_session(self, token_hash: str) -> LinkSession | None: ...
    async def get_link(self, journal_id: str, account_id: str) -> Link | None: ...
    async def user_links(self, user_id: str) -> list[tuple[Link, str]]: ...
    def confirm_link(
        self,
        token_hash: str,
        user_id: str,
        now: int,
        judge: Callable[[LinkSession | None, Link | None, list[Link]], str],
    ) -> Awaitable[tuple[str, LinkSession | None, Link | None]]: ...
    def unlink(
        self, journal_id: str, account_id: str, user_id: str | None = None
    ) -> Awaitable[Link | None]: ...
