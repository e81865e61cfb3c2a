"""The Grafana dashboards (deploy/monitoring/grafana/dashboards/), built from the typed models of
grafana-foundation-sdk: `make dashboards` writes them; tests/test_monitoring.py checks that the
committed files are what this module builds, and runs every query against a real Prometheus.

Every query is a rate or a current value over the dashboard's time range, never an average
since the process started: a restart or a quiet night does not flatten the lines.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import BigValueTextMode
from grafana_foundation_sdk.models.dashboard import Dashboard, DataSourceRef

from ..serving.settings import REGISTERED_MODEL
from ..training.config import project_root

FOLDER = Path("deploy/monitoring/grafana/dashboards")
# The datasource's uid in deploy/monitoring/grafana/provisioning/datasources/prometheus.yml.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
RATE = "$__rate_interval"  # Grafana's window for rate(): at least four scrape intervals
PREDICT = 'route="/predict"'
ERRORS = 'status=~"4..|5.."'
POSITIVE = 'label="1"'

Panel = Any  # a panel builder of the SDK (their common base class is not exported)


def _queries(*pairs: tuple[str, str]) -> list[prometheus.Dataquery]:
    """(PromQL, legend) pairs as Prometheus queries, lettered A, B, ..."""
    return [
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + index))
        for index, (expr, legend) in enumerate(pairs)
    ]


def _panel(
    builder: Panel,
    size: tuple[int, int],
    title: str,
    text: str,
    unit: str,
    *queries: tuple[str, str],
) -> Panel:
    """A panel of `size` (height, width of 24 columns) reading `queries` ((PromQL, legend))."""
    height, width = size
    panel = builder.title(title).description(text).datasource(DATASOURCE).unit(unit)
    for query in _queries(*queries):
        panel = panel.with_target(query)
    return panel.height(height).span(width)


def _rate(metric: str, selector: str = "") -> str:
    """rate() over Grafana's interval of `metric`'s series that match `selector`."""
    labels = "{" + selector + "}" if selector else ""
    return f"rate({metric}{labels}[{RATE}])"


def _quantile(q: float, histogram: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le) ({_rate(f'{histogram}_bucket', selector)}))"


def _board(name: str, title: str, text: str, panels: Sequence[Panel]) -> Dashboard:
    board = (
        dashboard.Dashboard(f"{REGISTERED_MODEL}: {title}")
        .uid(f"{REGISTERED_MODEL}-{name}"[:40])  # Grafana's limit
        .description(text)
        .tags([REGISTERED_MODEL])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
    )
    for panel in panels:  # laid out left to right, then down
        board = board.with_panel(panel)
    return board.build()


STAT, WIDE = (4, 8), (8, 12)  # panel sizes: a number on top, a chart below


def service_dashboard() -> Dashboard:
    """Traffic, errors, latency, saturation and which model version answers."""
    stats = [
        _panel(
            stat.Panel().text_mode(BigValueTextMode.NAME),
            STAT,
            "Model in use",
            "The registry version each role serves (serving_model_info).",
            "none",
            (
                'max by (role, name, version, alias) (serving_model_info{role="served"})',
                "{{name}} v{{version}} ({{alias}})",
            ),
        ),
        _panel(
            stat.Panel(),
            (4, 4),
            "Ready instances",
            "Processes with a model loaded (0 answers 503).",
            "none",
            ("sum(serving_model_ready)", "ready"),
        ),
        _panel(
            stat.Panel(),
            (4, 4),
            "Requests in flight",
            "Requests being answered now, all instances.",
            "none",
            ("sum(serving_requests_in_flight)", "in flight"),
        ),
        _panel(
            stat.Panel(),
            STAT,
            "Model reloads",
            "Alias re-resolutions that swapped the model or failed, in the time range.",
            "none",
            ("sum by (outcome) (increase(serving_model_reloads_total[$__range]))", "{{outcome}}"),
        ),
    ]
    charts = [
        _panel(
            timeseries.Panel(),
            WIDE,
            "Traffic",
            "Requests per second by route and status.",
            "reqps",
            (
                f"sum by (route, status) ({_rate('serving_requests_total')})",
                "{{route}} {{status}}",
            ),
        ),
        _panel(
            timeseries.Panel(),
            WIDE,
            "Error share",
            "Share of requests answered 4xx (the caller's mistake) or 5xx (the service's).",
            "percentunit",
            (
                f"sum by (status) ({_rate('serving_requests_total', ERRORS)})"
                f" / ignoring (status) group_left sum({_rate('serving_requests_total')})",
                "{{status}}",
            ),
        ),
        _panel(
            timeseries.Panel(),
            WIDE,
            "Latency of /predict",
            "Percentiles over all instances; the SLO (alerts.yml) is p99 under 100 ms.",
            "s",
            *(
                (_quantile(q, "serving_request_duration_seconds", PREDICT), f"p{q * 100:g}")
                for q in (0.5, 0.9, 0.99)
            ),
        ),
        _panel(
            timeseries.Panel(),
            WIDE,
            "Rows per request and requests per model call",
            "How big requests are, and how many the batcher scores together.",
            "none",
            (_quantile(0.99, "serving_request_rows"), "rows per request p99"),
            (_quantile(0.9, "serving_batch_requests"), "requests per model call p90"),
        ),
    ]
    text = "Is the service up, fast and answering?"
    return _board("service", "model service", text, [*stats, *charts])


def model_dashboard() -> Dashboard:
    """What the model predicts, how far live data has moved from its baseline, and whether the
    prediction log (the monitor's input) keeps up."""
    stats = [
        _panel(
            stat.Panel(),
            STAT,
            "Drift found by the last monitor run",
            "1: a check failed (drift, missing values, values out of range); see the report.",
            "none",
            (
                "max by (model_name, model_version) (model_drift_detected)",
                "{{model_name}} v{{model_version}}",
            ),
        ),
        _panel(
            stat.Panel(),
            STAT,
            "Last monitor run",
            "When `make monitor` last finished (alert MonitorStale after two days).",
            "dateTimeFromNow",
            ("max(model_monitor_last_run_timestamp_seconds) * 1000", "last run"),
        ),
        _panel(
            stat.Panel(),
            STAT,
            "Rows in the last monitor run",
            "Predictions the monitor compared with the baseline.",
            "none",
            ("max(model_monitor_rows)", "rows"),
        ),
    ]
    drift = [
        _panel(
            bargauge.Panel(),
            WIDE,
            "Drift score per feature",
            "Distance of each feature from the baseline (0: the same distribution); "
            "above its threshold the feature drifts.",
            "none",
            ("max by (feature) (model_feature_drift_score)", "{{feature}}"),
            ("max(model_prediction_drift_score)", "prediction"),
        ),
        _panel(
            bargauge.Panel(),
            WIDE,
            "Missing and out-of-range share per feature",
            "Shares of the monitored window's values.",
            "percentunit",
            ("max by (feature) (model_feature_missing_share)", "{{feature}} missing"),
            ("max by (feature) (model_feature_out_of_range_share)", "{{feature}} out of range"),
        ),
    ]
    traffic = [
        _panel(
            timeseries.Panel(),
            WIDE,
            "Predictions by label",
            "Rows scored per second, by predicted label.",
            "rowsps",
            (f"sum by (label) ({_rate('serving_predictions_total')})", "label {{label}}"),
        ),
        _panel(
            timeseries.Panel(),
            WIDE,
            "Positive share",
            "Share of rows labelled 1: a shift here is often the first sign of drift.",
            "percentunit",
            (
                f"sum({_rate('serving_predictions_total', POSITIVE)})"
                f" / sum({_rate('serving_predictions_total')})",
                "positive",
            ),
        ),
        _panel(
            timeseries.Panel(),
            WIDE,
            "Prediction log",
            "Rows written per second, and rows dropped by reason (alert PredictionLogDropping).",
            "rowsps",
            (f"sum({_rate('serving_prediction_log_rows_total')})", "written"),
            (
                f"sum by (reason) ({_rate('serving_prediction_log_dropped_total')})",
                "dropped: {{reason}}",
            ),
        ),
        _panel(
            timeseries.Panel(),
            WIDE,
            "Shadow agreement",
            "Rows the shadow model scored, by whether it agrees with the served model.",
            "rowsps",
            (
                f"sum by (agreement) ({_rate('serving_shadow_predictions_total')})",
                "{{agreement}}",
            ),
        ),
    ]
    text = "Is the model still seeing the data it learned?"
    return _board("model", "model monitoring", text, [*stats, *drift, *traffic])


DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "service": service_dashboard,
    "model": model_dashboard,
}


def rendered() -> dict[str, str]:
    """Each dashboard's JSON, by file name."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {f"{name}.json": encoder.encode(build()) + "\n" for name, build in DASHBOARDS.items()}


def expressions(board: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a dashboard's JSON."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield str(target["expr"])


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="dashboards", description=__doc__)
    cli.add_argument("--output", type=Path, default=None, help=f"folder (default: {FOLDER})")
    args = cli.parse_args(argv)
    folder = args.output or project_root() / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (folder / name).write_text(text)
        print(f"wrote {folder / name}: {len(json.loads(text)['panels'])} panels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
