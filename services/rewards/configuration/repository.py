"""The stored configuration version (`config_version`, rewards_0007)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.rewards.db import config_version

_VERSION = sa.select(config_version.c.version).where(config_version.c.id == 1)


class ConfigurationRepository:
    """The version every write to policies, limits and reward definitions moves on."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def version(self) -> int | None:
        """The current version; None if the row is missing (then nothing may be cached)."""
        found = await self.conn.scalar(_VERSION)
        return None if found is None else int(found)
