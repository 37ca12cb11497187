"""Policies, limits, voucher values and reward definitions, kept between consumer batches
while the stored configuration version stands.

Compensating a batch of incidents needs four pieces of configuration that change a few
times a month: the merchants' guarantee policies, their compensation limits, what each
voucher is worth (for the caps) and each reward's validity and merchant binding. Reading
them costs four statements per batch; the consumer instead keeps them in a `ConfigCache`
and reads one row per batch, `config_version`, which a statement trigger on each of the
three tables moves on in the same transaction as every write to them (rewards_0007), so
an API call, a migration or a hand-written UPDATE all count.

Why it is never stale: the version is read at the transaction's first use of the cache,
before anything it guards is read. A changed version (or a missing row) empties the cache,
and what the batch needs is read again. An entry read under version v is at least as new
as v: a change committed between the two reads is in the entry, and also moved the version
past v, so the next batch reads it again (once too often, never too few). A change not yet
committed is in neither. A config change through the API thus takes effect from the next
batch that starts after its commit, as when every batch read the tables.

A cache that lives one transaction (HTTP requests, the jobs) skips the version: it starts
empty, so whatever it holds was read in that transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from services.rewards.domain.guarantee import GuaranteePolicy, PromiseKind
from services.rewards.domain.guarantee_limits import CompensationLimits

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

PolicyKey = tuple[str, PromiseKind]
Definition = tuple[int, str | None]  # validity days, merchant binding
K = TypeVar("K")
V = TypeVar("V")
_CHECKED = "rewards.config_version_checked"  # uow.state: this transaction checked the version


class ConfigCache:
    """What the compensation path reads of the configuration, by key, as of `version`.

    `lasting`: kept across transactions (the consumer's, one per registry), so checked
    against `config_version` once per transaction; otherwise it lives in one transaction.
    """

    def __init__(self, *, lasting: bool = False) -> None:
        self.lasting = lasting
        self.version: int | None = None
        self.reads = 0  # configuration statements issued (the version's not counted)
        self._policies: dict[PolicyKey, GuaranteePolicy | None] = {}
        self._limits: dict[str, CompensationLimits] = {}
        self._definitions: dict[str, Definition | None] = {}  # None: no such reward
        self._voucher_values: dict[str, int] | None = None

    def clear(self) -> None:
        """Forget everything held (in place: callers may hold the dictionaries)."""
        self._policies.clear()
        self._limits.clear()
        self._definitions.clear()
        self._voucher_values = None

    async def _checked(self, uow: RewardsUnitOfWork) -> None:
        """Empty the cache if the configuration changed since it was filled: once per
        transaction, before the transaction reads anything the cache holds."""
        if not self.lasting or uow.state.get(_CHECKED) is self:
            return
        version = await uow.configuration.version()
        if version is None or version != self.version:
            self.clear()
        self.version = version
        uow.state[_CHECKED] = self

    async def policies(
        self, uow: RewardsUnitOfWork, wanted: set[PolicyKey]
    ) -> dict[PolicyKey, GuaranteePolicy | None]:
        """The policy of each (merchant, promise) wanted; None where there is none."""
        return await self._by_key(uow, self._policies, wanted, uow.policies.policies)

    async def limits(
        self, uow: RewardsUnitOfWork, merchants: set[str]
    ) -> dict[str, CompensationLimits]:
        """Each merchant's compensation caps (its own, else the default row's)."""
        return await self._by_key(uow, self._limits, merchants, uow.policies.limits_of)

    async def definitions(
        self, uow: RewardsUnitOfWork, reward_codes: set[str]
    ) -> dict[str, Definition]:
        """Validity days and merchant binding of each known reward code among those given."""

        async def read(missing: set[str]) -> dict[str, Definition | None]:
            found = await uow.vouchers.definitions_of(missing)
            return {code: found.get(code) for code in missing}

        known = await self._by_key(uow, self._definitions, reward_codes, read)
        return {code: found for code in reward_codes if (found := known[code]) is not None}

    async def voucher_values(self, uow: RewardsUnitOfWork) -> dict[str, int]:
        """What each valued reward's voucher is worth in minor units (for the caps)."""
        await self._checked(uow)
        if self._voucher_values is None:
            self.reads += 1
            self._voucher_values = await uow.compensations.voucher_values()
        return self._voucher_values

    async def _by_key(
        self,
        uow: RewardsUnitOfWork,
        cache: dict[K, V],
        wanted: Iterable[K],
        read: Callable[[set[K]], Awaitable[dict[K, V]]],
    ) -> dict[K, V]:
        await self._checked(uow)
        missing = set(wanted) - cache.keys()
        if missing:
            self.reads += 1
            cache.update(await read(missing))
        return cache
