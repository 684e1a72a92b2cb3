"""The load tester's report: figures, a JSON result file, a PNG plot and a terminal summary from per-request samples.

The load tester records one :class:`Sample` per request and hands the list here::

    result = summarize(samples, warmup_s=10, duration_s=60, meta={"command": ..., "settings": ..., "machine": ...})
    write_json(result, Path("out/result.json"))
    plot(samples, Path("out/result.png"), warmup_s=10, title="2207 mix, 1,000/s offered")
    print(render_text(result))

Modules: ``sample`` (a request, its outcome, the percentile), ``summary`` (the figures and the JSON file, whose
keys it documents), ``png`` (the plot; matplotlib, lazily, never pyplot), ``text`` (the terminal summary).
"""

from loadtest.report.png import plot
from loadtest.report.sample import ERROR_OUTCOMES, NOT_SENT_OUTCOMES, Sample, is_error, percentile
from loadtest.report.summary import PERCENTILE_METHOD, SCHEMA, summarize, timeseries, write_json
from loadtest.report.text import render_text

__all__ = [
    "ERROR_OUTCOMES",
    "NOT_SENT_OUTCOMES",
    "PERCENTILE_METHOD",
    "SCHEMA",
    "Sample",
    "is_error",
    "percentile",
    "plot",
    "render_text",
    "summarize",
    "timeseries",
    "write_json",
]
