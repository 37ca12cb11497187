"""The alerts service's API-key scopes (`admin`, which implies them all, is the chassis')."""

from shared.auth import Scope

ALERTS_READ = Scope("alerts:read")  # the at-risk list, activity, acknowledgements

SCOPES = (ALERTS_READ,)
