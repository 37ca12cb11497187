"""The rewards service's API-key scopes (`admin`, which implies them all, is the chassis')."""

from shared.auth import Scope

REWARDS_READ = Scope("rewards:read")  # the catalogue, vouchers, claims, referral codes
REWARDS_CLAIM = Scope("rewards:claim")  # catalogue claims, voucher redemptions, referrals
CLAIMS_FILE = Scope("claims:file")  # file a guarantee claim

SCOPES = (REWARDS_READ, REWARDS_CLAIM, CLAIMS_FILE)
