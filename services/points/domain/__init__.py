"""Pure rules of the points service: no I/O, no clock, no database.

Modules: ``earning`` (rule versions and points per order), ``currency`` (exponents and rates),
``lots`` (pending/available/expiring lots, redemption, claw-back), ``balances`` (balance and
liability at a moment), ``returns`` (proportional, cumulative reversals), ``ledger`` (entry
kinds), ``tiers`` (qualification and yearly review), ``invariants`` (the books balance),
``programme`` (rule versions in time), ``book`` (a customer's books in memory while a run applies).
"""
