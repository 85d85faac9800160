"""ringmaster's test kit: what the integration tests (tests/integration), the benchmarks
(perf/) and scripts/demo share, so that each piece exists once.

    kit.procs      ports from port 0, polling with deadlines, child processes with clean-up
    kit.http       the one HTTP/1.1 response reader (raw sockets), request builders
    kit.metrics    Prometheus text through the reference parser (python3-prometheus-client)
    kit.zookeeper  ZooKeeper servers and ensembles, zkctl; `python3 -m kit.zookeeper`
    kit.nginx      nginx from the templates in perf/ (and nginx-named.conf.in)
    kit.origin     the core of the test origin servers (backend.py, evil_backend.py)
    kit.load       load clients (threads on keep-alive connections, wrk)
    kit.fleet      fleets of proxies on one ZooKeeper: flags, admin views, samples

No pytest here (perf/ and the demo import it): fixtures live in tests/integration.
Put tests/ on sys.path to import it (conftest.py, harness.py and perf/perflib.py do).
"""
