"""Drift monitoring (`make monitor`): the rows the service scored, compared with the baseline of
the model version that scored them (models/baseline.py).

    window.py    the prediction log's rows of one model version in a time window
    drift.py     Evidently's drift, missing-value and range tests on them, summarised
    gauges.py    the summary as Prometheus gauges, in the file the service exports (/metrics)
    record.py    the report and scores as an MLflow run linked to the model version
    __main__.py  the command; exit status 1 when drift is found

Evidently is imported here only: it takes seconds to import and never enters the service.
"""
