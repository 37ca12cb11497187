"""Every periodic job of the alerts service, each a `shared.jobs.PeriodicJob`.

- `scanner`: one pass over the lapse checks and follow-ups due at the clock's now
  (`lapse.service.AlertScanner`); each completed pass counts on
  `loyalty_alerts_scan_passes_total`.
- `check-rescheduling`: moves pending lapse checks to a fit not yet marked (a refit over HTTP
  wakes it at once; otherwise it polls).
- `model-refit`: refits BG/NBD and reschedules under it; `segment-refresh`: re-ranks value
  segments; `open-alerts-gauge`: recounts `loyalty_alerts_open`.

Every one is safe with several instances (SKIP LOCKED, advisory locks).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.clock.service import AlertsClock
from services.alerts.lapse.service import AlertScanner
from services.alerts.metrics import SCAN_PASSES, refresh_open_alerts_gauge
from services.alerts.model.service import refit_model, reschedule_pending_checks
from services.alerts.segments.service import refresh_segments
from services.alerts.settings import AlertsSettings
from shared.jobs import PeriodicJob


@dataclass(frozen=True)
class AlertsJobs:
    scanner: PeriodicJob
    rescheduler: PeriodicJob
    refit: PeriodicJob
    segments: PeriodicJob
    open_alerts_gauge: PeriodicJob

    def all(self) -> list[PeriodicJob]:
        return [self.scanner, self.rescheduler, self.refit, self.segments, self.open_alerts_gauge]


def alerts_jobs(settings: AlertsSettings, engine: AsyncEngine, clock: AlertsClock) -> AlertsJobs:
    scanner = AlertScanner(
        engine, clock, batch_size=settings.scan_batch, alerts_topic=settings.alerts_topic
    )

    async def scan_pass() -> None:
        await scanner.scan_due()
        SCAN_PASSES.inc()

    return AlertsJobs(
        scanner=PeriodicJob("scanner", scan_pass, settings.scan_interval_seconds),
        rescheduler=PeriodicJob(
            "check-rescheduling",
            lambda: reschedule_pending_checks(engine),
            settings.reschedule_poll_seconds,
        ),
        refit=PeriodicJob(
            "model-refit",
            lambda: refit_model(engine, clock),
            settings.model_refit_interval_seconds,
        ),
        segments=PeriodicJob(
            "segment-refresh",
            lambda: refresh_segments(engine, clock),
            settings.segment_refresh_interval_seconds,
        ),
        open_alerts_gauge=PeriodicJob(
            "open-alerts-gauge",
            lambda: refresh_open_alerts_gauge(engine),
            settings.open_alerts_gauge_interval_seconds,
        ),
    )
