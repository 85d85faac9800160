"""Prometheus text format (GET /metrics) read by the reference parser
(prometheus_client.parser, Debian python3-prometheus-client): a malformed exposition fails
the reader instead of being half-read.

    parse_metrics(text)   {'name{label="v",...}': value}, one entry per sample, labels in
                          the order they were written (the proxy's own order), so a test
                          can look up the exact series it expects
    samples(text)         [(name, {label: value}, value)] for tools that sum or group
"""

from prometheus_client.parser import text_string_to_metric_families


def samples(text):
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append((s.name, dict(s.labels), float(s.value)))
    return out


def _escape(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def series_key(name, labels):
    """The key parse_metrics uses: name{k="v",...} (no braces without labels)."""
    if not labels:
        return name
    return "%s{%s}" % (name, ",".join('%s="%s"' % (k, _escape(v)) for k, v in labels.items()))


def parse_metrics(text):
    """{'name{labels}': value} for every sample in `text`."""
    return {series_key(name, labels): value for name, labels, value in samples(text)}
