"""Operating Tickwire as rendered: every service scraped and probed, the HPA's adapter rules
matching the series the code exports, alerts and the Grafana dashboard naming only metrics
that exist, and the pods locked down (ServiceAccounts, NetworkPolicies, Ingress paths).

The static tests read `kubectl kustomize` of each overlay and docker-compose.yml; the live
ones scrape real gateway and ingest processes and evaluate the queries against what they
export, with the labels the Prometheus Operator's PodMonitor adds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Backend
from tests.deploy.project import OVERLAYS, ROOT, kubectl, load_compose, render_overlay
from tests.stack import Service, Services
from tests.waiting import eventually
from tickwire.localservers import free_port

pytestmark = pytest.mark.skipif(kubectl() is None, reason="kubectl not installed: cannot render k8s/ overlays")

Objects = tuple[dict[str, Any], ...]
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DASHBOARD = ROOT / "k8s" / "components" / "monitoring" / "dashboards" / "tickwire.json"
METRIC_NAME = re.compile(r"\btickwire_[a-z0-9_]+\b")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


@pytest.fixture(params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> Objects:
    return render_overlay(str(request.param))


def of_kind(objects: Objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def workloads(objects: Objects) -> list[dict[str, Any]]:
    return of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet")


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}


def adapter_rules(objects: Objects) -> list[dict[str, Any]]:
    config = yaml.safe_load(named(objects, "ConfigMap", "tickwire-adapter-rules")["data"]["config.yaml"])
    rules: list[dict[str, Any]] = config["rules"]
    assert not config.get("externalRules"), "the HPA uses Pods metrics only"
    return rules


def alert_expressions(objects: Objects) -> list[str]:
    (rule,) = of_kind(objects, "PrometheusRule")
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


# ---- static: the rendered overlays and the compose file -------------------------------------


def test_monitoring_renders_in_each_overlay(objects: Objects) -> None:
    """A PodMonitor per service with /metrics, on a port its pods name; the adapter's rules
    in the adapter's namespace; the alerts, each with an expression and a severity."""
    pods = {w["metadata"]["name"]: w["spec"]["template"] for w in workloads(objects)}
    monitors = {m["metadata"]["name"]: m for m in of_kind(objects, "PodMonitor")}
    assert set(monitors) == {"gateway", "ingest"}
    for name, monitor in monitors.items():
        template = pods[name]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports and endpoint["path"] == "/metrics", name
    assert named(objects, "ConfigMap", "tickwire-adapter-rules")["metadata"]["namespace"] == "monitoring"
    dashboard = named(objects, "ConfigMap", "tickwire-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["tickwire.json"]) == json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert adapter_rules(objects)
    (rule,) = of_kind(objects, "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert {"TickwireIngestLagHigh", "TickwireNoLeaseHolder", "TickwireGapNotices", "TickwireSlowConsumerStorm",
            "TickwireJetStreamDown"} <= set(alerts)
    assert all(r["expr"].strip() and r["labels"]["severity"] in ("warning", "critical") for r in alerts.values())


def test_no_deployment_owned_by_an_hpa_sets_replicas(objects: Objects) -> None:
    owned = {(h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
             for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert owned
    for kind, name in owned:
        assert "replicas" not in named(objects, kind, name)["spec"], f"{kind}/{name}: the HPA owns the count"


def test_ingest_serves_probes_and_metrics_beyond_loopback(objects: Objects) -> None:
    """ingest's metrics host is not loopback, and its probes hit /healthz and /readyz on the
    port it serves them on (the one the PodMonitor scrapes)."""
    container = named(objects, "Deployment", "ingest")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert env.get("TICKWIRE_INGEST_METRICS_HOST", "127.0.0.1") not in LOOPBACK
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(env["TICKWIRE_INGEST_METRICS_PORT"])
    paths = {probe: container[probe]["httpGet"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths["readinessProbe"]["path"] == "/readyz"
    assert paths["livenessProbe"]["path"] == paths["startupProbe"]["path"] == "/healthz"
    assert all(ports.get(p["port"], p["port"]) == ports["metrics"] for p in paths.values())


def test_compose_ingest_metrics_host_is_not_loopback() -> None:
    compose = load_compose()["services"]
    for name, service in compose.items():
        env = service.get("environment", {})
        if "ingest" in service.get("command", []):
            assert str(env.get("TICKWIRE_INGEST_METRICS_HOST", "127.0.0.1")) not in LOOPBACK, name
    grafana = compose["grafana"]
    assert grafana["profiles"] == compose["prometheus"]["profiles"]
    assert any(str(v).startswith(f"./{DASHBOARD.parent.relative_to(ROOT)}:") for v in grafana["volumes"])


def test_every_pod_runs_without_an_api_token(objects: Objects) -> None:
    accounts = {a["metadata"]["name"]: a for a in of_kind(objects, "ServiceAccount")}
    for w in workloads(objects):
        pod = w["spec"]["template"]["spec"]
        name = w["metadata"]["name"]
        assert pod.get("automountServiceAccountToken") is False, name
        assert accounts[pod["serviceAccountName"]]["automountServiceAccountToken"] is False, name


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if (expression["operator"] == "In") != (value in expression["values"]):
            return False
    return True


def test_network_policies_deny_by_default_and_open_only_served_ports(objects: Objects) -> None:
    """1. A policy selects every pod and allows nothing. 2. Every workload has its own policy,
    whose ports are ports its containers listen on. 3. Redis is reachable from ingest (and the
    simulator) only, NATS from ingest and the gateways, the gateways from outside the
    namespace (the ingress controller, Prometheus) only on their HTTP port."""
    policies = of_kind(objects, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies)
    labels = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads(objects)}

    def allowed(source: str, target: str) -> set[int]:
        ports: set[int] = set()
        for policy in policies:
            if not policy["spec"]["podSelector"] or not selects(policy["spec"]["podSelector"], labels[target]):
                continue
            for rule in policy["spec"].get("ingress", []):
                if any("podSelector" in peer and "namespaceSelector" not in peer
                       and selects(peer["podSelector"], labels[source]) for peer in rule.get("from", [])):
                    ports |= {p["port"] for p in rule["ports"]}
        return ports

    for w in workloads(objects):
        name = w["metadata"]["name"]
        own = [p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], labels[name])]
        if name == "simulator":
            assert not own, "nothing connects to the simulator"
            continue
        assert own, f"{name}: no NetworkPolicy"
        served = {p["containerPort"] for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for policy in own:
            for rule in policy["spec"]["ingress"]:
                assert {p["port"] for p in rule["ports"]} <= served, f"{name}: a policy opens a port nothing serves"
    assert allowed("ingest", "redis") == {6379} and allowed("gateway", "redis") == set()
    assert allowed("gateway", "nats") == {4222} == allowed("ingest", "nats")
    assert allowed("ingest", "gateway") == set() and allowed("gateway", "ingest") == set()


def routed(ingress: dict[str, Any], path: str) -> bool:
    """Whether a request for ``path`` matches one of the Ingress's rules (Exact / Prefix by
    path elements, as the Ingress API defines them)."""
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            if p["pathType"] == "Exact" and path == p["path"]:
                return True
            prefix = p["path"].rstrip("/")
            if p["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")):
                return True
    return False


def test_public_ingress_routes_neither_metrics_nor_the_internal_api(objects: Objects) -> None:
    ingress = named(objects, "Ingress", "tickwire")
    for public in ("/", "/ws", "/sse", "/healthz", "/assets/index.js", "/api/dashboard", "/api/latency"):
        assert routed(ingress, public), public
    for internal in ("/metrics", "/api/status", "/api/anything", "/readyz", "/metrics/"):
        assert not routed(ingress, internal), internal


def test_dashboard_is_provisioned_in_compose_as_grafana_reads_it() -> None:
    """1. The dashboard's panels have unique ids, do not overlap, and query the data source
    variable it defines. 2. Compose mounts the provisioning folder where Grafana reads it and
    the dashboards folder where the provider looks. 3. The data source is compose's
    Prometheus on its port."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids, cells = set(), set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        x, y, w, h = (panel["gridPos"][k] for k in "xywh")
        area = {(col, row) for col in range(x, x + w) for row in range(y, y + h)}
        assert not area & cells, f"panel {panel['title']} overlaps another"
        cells |= area
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    compose = load_compose()["services"]
    mounts = dict(str(v).rsplit(":", 1)[0].split(":", 1) for v in compose["grafana"]["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "tickwire.yml").read_text())["providers"]
    assert mounts[f"./{DASHBOARD.parent.relative_to(ROOT)}"] == provider["options"]["path"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert any(str(p).endswith(":9090") for p in compose["prometheus"]["ports"])


# ---- live: real processes scraped, the queries evaluated on what they export ----------------


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    value: float


def scraped(text: str, target: dict[str, str]) -> list[Series]:
    """The samples of one scrape, with the target labels Prometheus adds (honor_labels off:
    a series carrying one of them itself would be renamed ``exported_…``)."""
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            clash = set(sample.labels) & set(target)
            assert not clash, f"{sample.name} carries target labels itself: {clash}"
            out.append(Series(sample.name, {**sample.labels, **target}, sample.value))
    return out


def exported_names(text: str) -> set[str]:
    """Every sample name an exposition can hold, including families with no sample yet (a
    labelled counter before its first increment)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created")}
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + s for s in suffixes.get(family.type, ("",))} | {s.name for s in family.samples}
    return names


def exported_labels(text: str) -> dict[str, set[str]]:
    """Per sample name, the label names its samples carry."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def labels_used(expr: str) -> set[str]:
    """Label names an expression groups by or matches on."""
    grouped = {g.strip() for by in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for g in by.split(",")}
    return (grouped | {name for name, _, _ in matchers(expr)}) - {""}


def matchers(text: str) -> list[tuple[str, str, str]]:
    return MATCHER.findall(text)


def matches(labels: dict[str, str], wanted: Iterable[tuple[str, str, str]]) -> bool:
    for name, op, value in wanted:
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def target_labels(objects: Objects, monitor: str, pod: str) -> dict[str, str]:
    """What the Prometheus Operator puts on every series of ``pod`` scraped by ``monitor``."""
    spec = named(objects, "PodMonitor", monitor)["spec"]
    template = named(objects, "Deployment", monitor)["spec"]["template"]
    namespace = named(objects, "Deployment", monitor)["metadata"]["namespace"]
    endpoint = spec["podMetricsEndpoints"][0]["port"]
    container = next(c["name"] for c in template["spec"]["containers"]
                     if endpoint in {p["name"] for p in c.get("ports", [])})
    labels = {"namespace": namespace, "pod": pod, "container": container, "endpoint": endpoint,
              "job": f"{namespace}/{monitor}", "instance": f"10.0.0.1:{endpoint}"}
    for label in spec.get("podTargetLabels", []):
        labels[re.sub(r"[^a-zA-Z0-9_]", "_", label)] = template["metadata"]["labels"][label]
    return labels


def evaluate(query: str, series: list[Series]) -> dict[tuple[str, ...], float]:
    """``agg(name{matchers}) by (labels)``, the one shape the adapter rules use."""
    shape = re.fullmatch(r"(sum|max|min|avg)\((\w+)\{(.*)\}\) by \(([\w, ]+)\)", query.strip())
    assert shape, f"not the agg(series{{matchers}}) by (labels) shape: {query}"
    agg, name, selector, by = shape.groups()
    keys = [k.strip() for k in by.split(",")]
    groups: dict[tuple[str, ...], list[float]] = {}
    for s in series:
        if s.name == name and matches(s.labels, matchers(selector)):
            groups.setdefault(tuple(s.labels.get(k, "") for k in keys), []).append(s.value)
    combine = {"sum": sum, "max": max, "min": min, "avg": lambda v: sum(v) / len(v)}[agg]
    return {k: float(combine(v)) for k, v in groups.items()}


@dataclass(frozen=True)
class Running:
    gateway_text: str
    ingest_text: str
    gateway: Service
    ingest: Service
    ingest_port: int


@pytest.fixture
async def running(services: Services, backend: Backend) -> AsyncIterator[Running]:
    """A real gateway with two WebSocket clients (and one it closed 1008 for a frame flood, so
    its closes counter has a `code`), and a real ingest holding stream md:ticks: their
    /metrics texts once the gateway counts both clients."""
    async with aioredis.from_url(backend.redis_url) as redis:
        await redis.xadd("md:ticks", {"symbol": "AAPL", "data": "{}"})
    metrics_port = free_port()
    ingest = services.ingest(TICKWIRE_INGEST_METRICS_PORT=str(metrics_port))
    gateway = services.gateway(TICKWIRE_MAX_FRAMES_PER_SECOND="2")
    await gateway.ready()
    async with websockets.connect(gateway.ws_url) as flood:
        await flood.recv()
        with contextlib.suppress(websockets.ConnectionClosed):
            for i in range(200):
                await flood.send(json.dumps({"type": "ping", "id": i}))
            await asyncio.wait_for(flood.wait_closed(), 10)
        assert flood.close_code == 1008
    async with (
        websockets.connect(gateway.ws_url) as one,
        websockets.connect(gateway.ws_url) as two,
        httpx.AsyncClient() as http,
    ):
        await one.recv()
        await two.recv()
        texts: dict[str, str] = {}

        async def both_ready() -> bool:
            try:
                texts["gateway"] = (await http.get(f"{gateway.url}/metrics")).text
                texts["ingest"] = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            except httpx.TransportError:
                return False
            return ("tickwire_connections 2.0" in texts["gateway"]
                    and 'tickwire_gateway_closes_total{code="1008"}' in texts["gateway"]
                    and 'tickwire_ingest_lag{stream="md:ticks"}' in texts["ingest"])

        await eventually(both_ready, within=20, every=0.1, what="two connections and a held stream on /metrics")
        yield Running(texts["gateway"], texts["ingest"], gateway, ingest, metrics_port)


@pytest.mark.slow
async def test_adapter_rules_serve_the_hpa_from_a_real_scrape(running: Running) -> None:
    """1. A real gateway (two clients) and ingest are scraped, their series labelled as the
    PodMonitors would. 2. For each adapter rule: its seriesQuery selects gateway series; the
    labels it maps to resources are on them; its metricsQuery, expanded as the adapter does
    for the HPA's pods, gives each pod its value (2 connections, a lag ≥ 0). 3. Every custom
    metric of the HPA is a Pods metric some rule serves under that name."""
    gateway_text, ingest_text = running.gateway_text, running.ingest_text
    for overlay in OVERLAYS:
        objects = render_overlay(overlay)
        pod = "gateway-7d9f-abcde"
        series = (scraped(gateway_text, target_labels(objects, "gateway", pod))
                  + scraped(ingest_text, target_labels(objects, "ingest", "ingest-5c4b-fghij")))
        namespace = named(objects, "Deployment", "gateway")["metadata"]["namespace"]
        served = {}
        for rule in adapter_rules(objects):
            name, selector = re.fullmatch(r"(\w+)\{(.*)\}", rule["seriesQuery"]).groups()  # type: ignore[union-attr]
            selected = [s for s in series if s.name == name and matches(s.labels, matchers(selector))]
            assert selected, f"{overlay}: seriesQuery {rule['seriesQuery']} selects nothing the gateway exports"
            overrides = rule["resources"]["overrides"]
            assert all(set(overrides) <= set(s.labels) for s in selected)
            assert re.fullmatch(rule["name"]["matches"], name)
            query = (rule["metricsQuery"].replace("<<.Series>>", name)
                     .replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod=~"{pod}"')
                     .replace("<<.GroupBy>>", "pod"))
            values = evaluate(query, series)
            assert set(values) == {(pod,)}, f"{overlay}: {query} gave {values}"
            served[rule["name"]["as"]] = values[(pod,)]
        assert served["tickwire_connections"] == 2
        assert served["tickwire_consumer_lag_messages"] >= 0
        (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
        custom = [m for m in hpa["spec"]["metrics"] if m["type"] != "Resource"]
        assert custom and all(m["type"] == "Pods" and m["pods"]["metric"]["name"] in served for m in custom)


@pytest.mark.slow
async def test_alerts_and_dashboard_name_only_exported_metrics(running: Running) -> None:
    """1. Real gateway and ingest processes are scraped. 2. Every tickwire_* name in an alert
    expression, an adapter rule and a dashboard query is one of the names they export (a
    typo or a renamed metric would leave a panel empty or an alert silent forever). 3. Every
    label an expression groups by or matches on is one its metrics carry, or one Prometheus
    adds to every target."""
    exported = exported_names(running.gateway_text) | exported_names(running.ingest_text)
    labels = {**exported_labels(running.ingest_text), **exported_labels(running.gateway_text)}
    everywhere = {"instance", "job", "namespace", "pod", "container", "endpoint"}
    expressions: dict[str, list[str]] = {"dashboard": dashboard_expressions()}
    for overlay in OVERLAYS:
        objects = render_overlay(overlay)
        expressions.setdefault("alerts", []).extend(alert_expressions(objects))
        expressions.setdefault("adapter rules", []).extend(r["seriesQuery"] for r in adapter_rules(objects))
    missing, unlabelled = {}, {}
    for where, exprs in expressions.items():
        assert exprs, where
        for expr in exprs:
            names = set(METRIC_NAME.findall(expr))
            assert names, f"{where}: {expr} names no tickwire metric"
            if names - exported:
                missing[expr] = sorted(names - exported)
            carried = everywhere.union(*(labels.get(n, set()) for n in names))
            if labels_used(expr) - carried:
                unlabelled[expr] = sorted(labels_used(expr) - carried)
    assert not missing, f"names no running service exports: {missing}"
    assert not unlabelled, f"labels none of the named metrics carry: {unlabelled}"


# ---- live, through a real Prometheus (Debian's `prometheus` package) -------------------------

PROMETHEUS = shutil.which("prometheus")
POD = {"gateway": "gateway-7d9f-abcde", "ingest": "ingest-5c4b-fghij"}


@contextlib.contextmanager
def prometheus(workdir: Path, targets: dict[str, str], namespace: str, rules: dict[str, Any]) -> Iterator[str]:
    """Prometheus scraping ``targets`` (service → host:port) every second with the labels a
    PodMonitor gives, evaluating ``rules``; its URL for the block's duration."""
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {"job_name": f"{namespace}/{service}",
             "static_configs": [{"targets": [target], "labels": {"namespace": namespace, "pod": POD[service]}}]}
            for service, target in targets.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    assert PROMETHEUS is not None
    with open(workdir / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def query(http: httpx.AsyncClient, url: str, expr: str) -> list[dict[str, Any]]:
    answer = (await http.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def alert_states(http: httpx.AsyncClient, url: str) -> dict[str, dict[str, Any]]:
    groups = (await http.get(f"{url}/api/v1/rules", timeout=5)).json()["data"]["groups"]
    return {r["name"]: r for g in groups for r in g["rules"]}


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus (Debian package `prometheus`: `make test` installs it)")
async def test_a_real_prometheus_evaluates_the_adapter_rules_alerts_and_panels(running: Running,
                                                                                tmp_path: Path) -> None:
    """1. A real Prometheus scrapes the gateway and ingest every second, labelled as the
    PodMonitors label them, and loads the rendered PrometheusRule. 2. The adapter's queries,
    expanded for the gateway's pod, answer its 2 connections and its lag. 3. Every dashboard
    query evaluates; all but the 4008 one (none happened) return series. 4. On this healthy
    stack every alert evaluates without error and none fires. 5. ingest stopped: the
    no-lease-holder alert turns pending."""
    objects = render_overlay("prod")
    namespace = named(objects, "Deployment", "gateway")["metadata"]["namespace"]
    (rule,) = of_kind(objects, "PrometheusRule")
    targets = {"gateway": running.gateway.url.removeprefix("http://"), "ingest": f"127.0.0.1:{running.ingest_port}"}
    with prometheus(tmp_path, targets, namespace, rule["spec"]) as url:
        async with httpx.AsyncClient() as http:

            async def scraped_thrice() -> bool:
                try:
                    up = await query(http, url, "count_over_time(up[1m]) >= 3 and up == 1")
                    states = await alert_states(http, url)
                except (httpx.TransportError, ValueError):
                    return False
                # lastEvaluation is RFC 3339, year 0001 until the first evaluation.
                return len(up) == 2 and all(r["lastEvaluation"] > "2000" for r in states.values())

            await eventually(scraped_thrice, within=30, every=0.25, what="both targets scraped three times")
            for adapter_rule in adapter_rules(objects):
                name = re.fullmatch(r"(\w+)\{.*\}", adapter_rule["seriesQuery"]).group(1)  # type: ignore[union-attr]
                expr = (adapter_rule["metricsQuery"].replace("<<.Series>>", name)
                        .replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod=~"{POD["gateway"]}"')
                        .replace("<<.GroupBy>>", "pod"))
                (answer,) = await query(http, url, expr)
                assert answer["metric"] == {"pod": POD["gateway"]}
                if name == "tickwire_connections":
                    assert float(answer["value"][1]) == 2
            for expr in dashboard_expressions():
                result = await query(http, url, expr)
                assert result or 'code="4008"' in expr, f"panel query returns nothing: {expr}"
            states = await alert_states(http, url)
            assert set(states) >= {"TickwireNoLeaseHolder", "TickwireJetStreamDown"}
            for name, state in states.items():
                assert state["health"] == "ok", f"{name}: {state.get('lastError')}"
                assert state["state"] == "inactive", f"{name} fires on a healthy stack"
            running.ingest.stop()

            async def no_holder_pending() -> bool:
                return (await alert_states(http, url))["TickwireNoLeaseHolder"]["state"] in ("pending", "firing")

            await eventually(no_holder_pending, within=20, every=0.25, what="TickwireNoLeaseHolder pending")
