"""sessionkit.deploy and ``sessionkit lb-config``: what each load balancer's config says (its
health check included), that HAProxy and nginx accept it, that bad inputs are refused clearly
(instance ids by the same rule as the instances' own), and that the files in examples/deploy
are what the generator writes today."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessionkit import cli, deploy
from sessionkit.affinity import resolve_instance_id, split_route
from sessionkit.deploy.haproxy import haproxy_cookie_argument, render_haproxy
from sessionkit.deploy.nginx import render_nginx
from sessionkit.deploy.plan import LB_COOKIE, parse_address
from sessionkit.deploy.yaml import Note, to_yaml, yaml_scalar
from sessionkit.errors import ConfigError
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"
THREE = {"a": "127.0.0.1:8001", "b": "127.0.0.1:8002", "c": "127.0.0.1:8003"}
INSTANCE_SETS = {
    "one": {"solo": "127.0.0.1:8001"},
    "three": THREE,
    "mixed": {"shop-1": "127.0.0.1:9001", "shop-2": "127.0.0.2:9002", "v6": "[::1]:9003",
              "web-0": "localhost:9004"},
}
TOKEN = "Ab-_" * 16  # a session id: 64 base64url characters, no '.'


def generated(lb: str, instances: dict[str, str] = THREE, **kwargs: str) -> str:
    return deploy.render(lb, instances, **kwargs)


# --- a reader for the YAML subset sessionkit.deploy writes ------------------------------------
_KEY_RE = re.compile(r'("(?:[^"\\]|\\.)*"|[^\s"#-][^:]*?):(?: (.+))?')


def read_yaml(text: str) -> list[Any]:
    """The documents of ``text``: block mappings and sequences, JSON-quoted or plain scalars.
    Anything outside that subset fails an assertion instead of being guessed at."""
    documents: list[list[tuple[int, str]]] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw == "---":
            documents.append([])
            continue
        assert documents, f"content before the first '---': {raw!r}"
        documents[-1].append((len(raw) - len(raw.lstrip(" ")), stripped))
    parsed = []
    for lines in documents:
        value, end = _node(lines, 0)
        assert end == len(lines), f"unparsed lines from {lines[end]!r}"
        parsed.append(value)
    return parsed


def _node(lines: list[tuple[int, str]], i: int) -> tuple[Any, int]:
    indent, text = lines[i]
    if text.startswith("- "):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _mapping(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        match = _KEY_RE.fullmatch(lines[i][1])
        assert match, f"not a mapping entry: {lines[i][1]!r}"
        key, rest = _scalar(match[1]), match[2]
        assert key not in out, f"duplicate key {key!r}"
        i += 1
        if rest is None:
            assert i < len(lines) and lines[i][0] > indent, f"{key!r} has no value"
            out[key], i = _node(lines, i)
        else:
            out[key] = _scalar(rest)
    assert i == len(lines) or lines[i][0] < indent, f"bad indentation at {lines[i]!r}"
    return out, i


def _sequence(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
        item = lines[i][1][2:]
        if _KEY_RE.fullmatch(item):  # a mapping whose first key shares the dash's line
            lines[i] = (indent + 2, item)
            value, i = _mapping(lines, i, indent + 2)
        else:
            value, i = _scalar(item), i + 1
        out.append(value)
    return out, i


def _scalar(text: str) -> Any:
    if text.startswith('"'):
        return json.loads(text)
    known: dict[str, Any] = {"true": True, "false": False, "{}": {}, "[]": []}
    if text in known:
        return known[text]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    assert re.fullmatch(r"[A-Za-z_/][A-Za-z0-9_./-]*", text), f"ambiguous plain scalar {text!r}"
    return text


def documents(lb: str, instances: dict[str, str] = THREE, **kwargs: str) -> list[Any]:
    return read_yaml(generated(lb, instances, **kwargs))


def of_kind(docs: list[Any], kind: str) -> list[Any]:
    return [d for d in docs if d.get("kind") == kind]


# --- every load balancer ----------------------------------------------------------------------
@pytest.mark.parametrize("instances", INSTANCE_SETS.values(), ids=INSTANCE_SETS.keys())
@pytest.mark.parametrize("lb", deploy.LOAD_BALANCERS)
def test_every_config_names_every_instance_and_how_to_regenerate_it(
    lb: str, instances: dict[str, str],
) -> None:
    text = generated(lb, instances)
    listed = ",".join(f"{k}={v}" for k, v in instances.items())
    assert (f"# Generated by: sessionkit lb-config {lb} --instances {listed} --cookie session "
            f"--listen 127.0.0.1:8080\n") in text
    assert text == generated(lb, instances), "rendering must be deterministic"
    assert text.endswith("\n") and "\t" not in text
    for address in instances.values():
        host, _, port = address.rpartition(":")
        assert host.strip("[]") in text and port in text


def test_the_generated_by_line_is_a_shell_command_that_renders_the_same_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = deploy.render("haproxy", THREE, cookie="it's$#x", listen="127.0.0.1:9")
    command = text.split("# Generated by: ", 1)[1].splitlines()[0]
    program, *args = shlex.split(command)
    assert program == "sessionkit" and cli.main(args) == 0
    assert capsys.readouterr().out == text


def test_load_balancers_and_file_names_match() -> None:
    assert set(deploy.FILENAMES) == set(deploy.LOAD_BALANCERS) == {
        "haproxy", "nginx", "ingress-nginx", "traefik", "envoy", "kubernetes-service"}


# --- HAProxy ----------------------------------------------------------------------------------
@pytest.mark.parametrize("instances", INSTANCE_SETS.values(), ids=INSTANCE_SETS.keys())
def test_haproxy_routes_each_suffix_to_its_server_with_health_checks(
    instances: dict[str, str],
) -> None:
    lines = generated("haproxy", instances, listen="127.0.0.1:9090").splitlines()
    rules = [x.strip() for x in lines if x.strip().startswith("use-server")]
    servers = [x.strip() for x in lines if x.strip().startswith("server ")]
    assert rules == [f"use-server {i} if {{ req.cook(session) -m end .{i} }}" for i in instances]
    assert servers == [f"server {i} {address}" for i, address in instances.items()]
    body = [x.strip() for x in lines if not x.startswith("#")]
    for directive in ("balance roundrobin", "option httpchk OPTIONS /", "option redispatch 1",
                      "retries 2", "bind 127.0.0.1:9090", "option forwardfor",
                      "option http-server-close"):
        assert directive in body
    checks = next(x for x in body if x.startswith("default-server"))
    assert "check" in checks.split() and "inter 1s" in checks


def test_haproxy_documents_the_insert_cookie_alternative_and_instance_death() -> None:
    comments = "\n".join(x for x in generated("haproxy").splitlines() if x.startswith("#"))
    assert "cookie SERVERID insert indirect nocache" in comments
    assert "When an instance dies" in comments


@pytest.mark.parametrize(("cookie", "argument"), [
    ("session", "session"),
    ("__Host-session", "__Host-session"),
    ("a#b", "a\\#b"),
    ("it's", "it\\\\\\'s"),
    ("cash$", "cash$"),
])
def test_haproxy_escapes_cookie_names_its_config_reader_would_mangle(
    cookie: str, argument: str,
) -> None:
    assert haproxy_cookie_argument(cookie) == argument
    assert f"req.cook({argument}) -m end .a }}" in generated("haproxy", cookie=cookie)


# --- nginx ------------------------------------------------------------------------------------
def nginx_route_regex(text: str) -> re.Pattern[str]:
    """The route map's regex, in Python's spelling of named groups."""
    (line,) = [x for x in text.splitlines() if x.strip().startswith('"~')]
    pattern = line.strip().split('"')[1].removeprefix("~")
    return re.compile(pattern.replace("(?<", "(?P<"))


def nginx_upstream(text: str, name: str) -> list[str]:
    match = re.search(rf"\n\s*upstream {re.escape(name)} {{\n(.*?)\n\s*}}", text, re.S)
    assert match, f"no upstream {name}"
    return [x.strip() for x in match[1].splitlines()]


@pytest.mark.parametrize(("value", "route"), [
    (f"{TOKEN}.a", "a"),
    (f"{TOKEN}.shop-1", "shop-1"),
    (f"{TOKEN}.shop_2", None),  # never a route: the instance-id rule has no '_'
    (f"{TOKEN}.shop-2", "shop-2"),
    ("x.y.web-0", "web-0"),
    (f"{TOKEN}.{'z' * 63}", "z" * 63),
    (TOKEN, None),
    (f"{TOKEN}.", None),
    (f"{TOKEN}.UPPER", None),
    (f"{TOKEN}.a.b!", None),
    (f"{TOKEN}.{'z' * 64}", None),
])
def test_nginx_map_extracts_the_suffix_after_the_last_dot(value: str, route: str | None) -> None:
    text = generated("nginx")
    assert "map $cookie_session $sessionkit_route {" in text
    match = nginx_route_regex(text).search(value)
    assert (match["sessionkit_suffix"] if match else None) == route


def test_nginx_reads_the_cookie_header_for_names_variables_cannot_spell() -> None:
    text = generated("nginx", cookie="__Host-s.id")
    assert "map $http_cookie $sessionkit_route {" in text and "map $cookie_" not in text
    regex = nginx_route_regex(text)
    assert regex.search(f"a=1; __Host-s.id={TOKEN}.shop-1; b=2")["sessionkit_suffix"] == "shop-1"
    assert regex.search(f"__Host-s.id={TOKEN}.b")["sessionkit_suffix"] == "b"
    assert regex.search(f"x__Host-s.id={TOKEN}.b") is None
    assert regex.search(f"__Host-sXid={TOKEN}.b") is None, "the '.' in the name is literal"


@pytest.mark.parametrize("instances", INSTANCE_SETS.values(), ids=INSTANCE_SETS.keys())
def test_nginx_gives_each_instance_an_upstream_with_the_others_as_backup(
    instances: dict[str, str],
) -> None:
    text = generated("nginx", instances)
    for instance_id, address in instances.items():
        assert f"    {instance_id} sessionkit_route_{instance_id};" in text
        servers = nginx_upstream(text, f"sessionkit_route_{instance_id}")
        assert servers[0] == f"server {address} max_fails=1 fail_timeout=5s;"
        assert servers[1:] == [f"server {other} backup;"
                               for i, other in instances.items() if i != instance_id]
    assert nginx_upstream(text, "sessionkit_any") == [
        f"server {address} max_fails=1 fail_timeout=5s;" for address in instances.values()]
    assert "default sessionkit_any;" in text


def test_nginx_proxies_with_failover_short_timeouts_and_forwarding_headers() -> None:
    text = generated("nginx", listen="127.0.0.1:9090")
    for directive in (
        "listen 127.0.0.1:9090;", "proxy_pass http://$sessionkit_upstream;",
        "proxy_next_upstream error timeout http_502 http_503;", "proxy_connect_timeout 1s;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ):
        assert f"    {directive}\n" in text
    comments = "\n".join(x for x in text.splitlines() if x.startswith("#"))
    assert "When an instance dies" in comments and "backup" in comments
    assert "\\w" not in text


def test_nginx_runtime_dir_holds_pid_logs_and_temp_files() -> None:
    text = render_nginx(THREE, runtime_dir="/srv/nginx-run")
    for line in ("pid /srv/nginx-run/nginx.pid;", "error_log /srv/nginx-run/error.log;",
                 "access_log /srv/nginx-run/access.log;",
                 "client_body_temp_path /srv/nginx-run/client_body;",
                 "proxy_temp_path /srv/nginx-run/proxy;"):
        assert line in text
    assert "--runtime-dir /srv/nginx-run" in text
    assert "pid " not in generated("nginx")
    with pytest.raises(ConfigError, match="absolute path"):
        render_nginx(THREE, runtime_dir="relative/dir")
    with pytest.raises(ConfigError, match="absolute path"):
        render_nginx(THREE, runtime_dir="/tmp/x; user root")


# --- YAML -------------------------------------------------------------------------------------
def test_yaml_round_trips_through_a_reader_and_quotes_what_yaml_would_reinterpret() -> None:
    document = {
        "plain": "cookie", "yes": "yes", "on": "On", "null": "null", "number": "8080",
        "duration": "1209600s", "@type": "type.googleapis.com/x.v3.Y", "empty": "",
        "quotes": 'say "hi" \\ `now`', "colon": "a: b", "hash": "#x", "dash": "-1",
        "int": 42, "bool": False, "no map": {}, "no list": [],
        "list": ["web", {"name": "x", "items": [True, 1, "two"]}, {"k": {"deep": "v"}}],
        "map": {"nested": {"more": ["1", "2"]}},
    }
    text = to_yaml([document, {"second": 2}])
    assert read_yaml(text) == [document, {"second": 2}]
    for word in ("yes", "On", "null", "8080", "1209600s", "-1"):
        assert yaml_scalar(word) == json.dumps(word)
    assert yaml_scalar("sessionkit_lb") == "sessionkit_lb"


def test_yaml_notes_become_comments_above_their_key() -> None:
    text = to_yaml([{"a": {"b": Note("why b\nand more", "x")}}])
    assert text == "---\na:\n  # why b\n  # and more\n  b: x\n"


@pytest.mark.parametrize("instances", INSTANCE_SETS.values(), ids=INSTANCE_SETS.keys())
@pytest.mark.parametrize("lb", ["ingress-nginx", "kubernetes-service"])
def test_kubernetes_endpoints_are_the_instances(lb: str, instances: dict[str, str]) -> None:
    docs = documents(lb, instances, listen="0.0.0.0:80")
    (service,) = of_kind(docs, "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert "selector" not in service["spec"]
    found = set()
    for endpoint_slice in of_kind(docs, "EndpointSlice"):
        assert endpoint_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "sessionkit"
        ((port,),) = [[p["port"] for p in endpoint_slice["ports"]]]
        assert endpoint_slice["ports"][0]["name"] == "http"
        for endpoint in endpoint_slice["endpoints"]:
            (address,) = endpoint["addresses"]
            found.add((address, port, endpoint_slice["addressType"]))
    expected = set()
    for address in instances.values():
        parsed = parse_address(address, "test")
        expected.add((parsed.bare_host, parsed.port, parsed.kind))
    assert found == expected


def test_ingress_nginx_uses_its_own_cookie_and_explains_misroute_detection() -> None:
    text = generated("ingress-nginx")
    (ingress,) = of_kind(read_yaml(text), "Ingress")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "affinity"] == "cookie"
    assert annotations[prefix + "affinity-mode"] == "persistent"
    assert annotations[prefix + "session-cookie-name"] == LB_COOKIE != "session"
    assert annotations[prefix + "session-cookie-change-on-failure"] == "true"
    assert all(isinstance(v, str) for v in annotations.values()), "annotations are strings"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "sessionkit", "port": {"name": "http"}}
    comments = " ".join(x.lstrip("# ") for x in text.splitlines() if x.startswith("#"))
    assert "misroute detection" in comments and "affinity_miss" in comments


def test_kubernetes_service_sticks_by_client_ip_under_a_loud_warning() -> None:
    text = generated("kubernetes-service")
    (service,) = of_kind(read_yaml(text), "Service")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    timeout = service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"]
    assert 0 < timeout <= 86400
    comments = " ".join(x.lstrip("# ") for x in text.splitlines() if x.startswith("#"))
    for warning in ("NAT", "LOSES ITS SESSION", "changes IP", "Prefer routing on the cookie"):
        assert warning in comments


def test_kubernetes_notes_loopback_addresses_only_when_there_are_some() -> None:
    assert "loopback" in generated("kubernetes-service")
    assert "loopback" not in generated("kubernetes-service", {"a": "10.0.0.5:8000"})


def test_traefik_sticks_with_a_cookie() -> None:
    text = generated("traefik", listen="127.0.0.1:9090")
    (document,) = read_yaml(text)
    balancer = document["http"]["services"]["sessionkit"]["loadBalancer"]
    assert balancer["sticky"]["cookie"]["name"] == LB_COOKIE
    assert "healthCheck" not in balancer  # a path only the app can name (see below)
    assert balancer["servers"] == [{"url": f"http://{a}"} for a in THREE.values()]
    router = document["http"]["routers"]["sessionkit"]
    assert router["service"] == "sessionkit" and router["entryPoints"] == ["web"]
    assert all(m in document["http"]["middlewares"] for m in router["middlewares"])
    assert "--entryPoints.web.address=127.0.0.1:9090" in text


def envoy_cluster(docs: list[Any]) -> Any:
    (cluster,) = docs[0]["static_resources"]["clusters"]
    return cluster


def test_envoy_keeps_sessions_with_the_stateful_cookie_filter() -> None:
    text = generated("envoy", listen="127.0.0.1:9090")
    docs = read_yaml(text)
    (listener,) = docs[0]["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9090}
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    stateful, router = manager["http_filters"]
    assert stateful["typed_config"]["session_state"]["name"] == "envoy.http.stateful_session.cookie"
    assert router["name"] == "envoy.filters.http.router", "the router must be the last filter"
    cluster = envoy_cluster(docs)
    assert cluster["type"] == "STATIC"
    assert cluster["health_checks"][0]["http_health_check"] == {
        "path": "/", "method": "OPTIONS", "expected_statuses": [{"start": 100, "end": 600}]}
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"] for e in endpoints] == [
        {"address": "127.0.0.1", "port_value": p} for p in (8001, 8002, 8003)]
    assert "RING_HASH" in text, "the ring-hash trade-off is explained"


def test_envoy_resolves_host_names_with_strict_dns() -> None:
    docs = documents("envoy", INSTANCE_SETS["mixed"])
    assert envoy_cluster(docs)["type"] == "STRICT_DNS"


# --- health checks ----------------------------------------------------------------------------
def test_by_default_no_config_checks_a_route_of_the_app() -> None:
    """The example shop's /whoami was checked once, and took every server of a real app out."""
    for lb in deploy.LOAD_BALANCERS:
        text = generated(lb)
        assert "whoami" not in text
    haproxy = [x.strip() for x in generated("haproxy").splitlines() if not x.startswith("#")]
    assert "option httpchk OPTIONS /" in haproxy
    assert "http-check expect rstatus ^[1-5][0-9][0-9]$" in haproxy  # any HTTP answer


@pytest.mark.parametrize("lb", ["haproxy", "traefik", "envoy"])
def test_a_health_path_is_checked_for_2xx_and_3xx(lb: str) -> None:
    text = generated(lb, health_path="/healthz")
    assert "--health-path /healthz" in text.split("# Generated by: ", 1)[1].splitlines()[0]
    if lb == "haproxy":
        body = [x.strip() for x in text.splitlines() if not x.startswith("#")]
        assert "option httpchk GET /healthz" in body
        assert "http-check expect status 200-399" in body
    elif lb == "traefik":
        (document,) = read_yaml(text)
        check = document["http"]["services"]["sessionkit"]["loadBalancer"]["healthCheck"]
        assert check == {"path": "/healthz", "interval": "2s", "timeout": "1s"}
    else:
        assert envoy_cluster(read_yaml(text))["health_checks"][0]["http_health_check"] == {
            "path": "/healthz", "expected_statuses": [{"start": 200, "end": 400}]}


@pytest.mark.parametrize("lb", ["nginx", "ingress-nginx", "kubernetes-service"])
def test_balancers_without_an_active_check_say_what_to_do_with_a_health_path(lb: str) -> None:
    comments = "\n".join(x for x in generated(lb, health_path="/healthz").splitlines()
                         if x.startswith("#"))
    assert "/healthz" in comments
    default = "\n".join(x for x in generated(lb).splitlines() if x.startswith("#"))
    assert ("tcpSocket" in default) if lb != "nginx" else ("max_fails" in default)


@pytest.mark.parametrize("path", ["healthz", "/a b", "/a;b", "/a#b", '/"x', "/a\nb",
                                  "/" + "x" * 300])
def test_bad_health_paths_are_refused(path: str) -> None:
    with pytest.raises(ConfigError, match="health path"):
        deploy.render("haproxy", THREE, health_path=path)


def test_haproxy_accepts_a_config_with_a_health_path(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(deploy.render("haproxy", THREE, health_path="/status?deep=1&x=%20"))
    check([binary("haproxy"), "-c", "-q", "-f", str(config)])


def test_cli_passes_the_health_path(capsys: pytest.CaptureFixture[str]) -> None:
    for lb in deploy.LOAD_BALANCERS:
        assert cli.main(["lb-config", lb, "--instances", INSTANCES_FLAG,
                         "--health-path", "/healthz"]) == 0
        assert capsys.readouterr().out == deploy.render(lb, THREE, health_path="/healthz")


# --- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("instance_id", ["", "A", "a.b", "a b", "é", "x" * 64, "a/b", "shop_2"])
def test_bad_instance_ids_are_refused_by_the_rule_instances_follow(instance_id: str) -> None:
    """One rule: an id lb-config refuses is one an instance refuses too, and one a cookie
    never carries as its route (a config for it would route nothing)."""
    with pytest.raises(ConfigError, match=r"is not a valid instance id") as refused:
        deploy.render("haproxy", {instance_id: "127.0.0.1:8001"})
    with pytest.raises(ConfigError) as own:
        resolve_instance_id(instance_id, {})
    assert str(refused.value).split(" is not", 1)[1] == str(own.value).split(" is not", 1)[1]
    parts = split_route(f"token.{instance_id}")
    assert parts is None or parts[1] != instance_id


@pytest.mark.parametrize("instance_id", ["a", "shop-1", "x" * 63, "0"])
def test_instance_ids_an_instance_takes_are_accepted(instance_id: str) -> None:
    assert resolve_instance_id(instance_id, {}) == instance_id
    assert f"server {instance_id} " in deploy.render("haproxy", {instance_id: "127.0.0.1:1"})


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.0.0.1:", ":8001", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x",
    "999.0.0.1:80", "::1:8001", "[::g]:80", "bad host:80", "host;rm:80", "-lead:80",
    "http://127.0.0.1:80",
])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(ConfigError, match=r"host:port|port must be"):
        deploy.render("nginx", {"a": address})
    with pytest.raises(ConfigError, match="listen address"):
        deploy.render("nginx", THREE, listen=address)


@pytest.mark.parametrize("cookie", ["", "a b", "a;b", "a=b", "a,b", 'a"b', "(a)", "sé"])
def test_bad_cookie_names_are_refused(cookie: str) -> None:
    with pytest.raises(ConfigError, match=r"cookie name .* is not valid"):
        deploy.render("traefik", THREE, cookie=cookie)


def test_other_bad_inputs_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="no instances"):
        deploy.render("envoy", {})
    with pytest.raises(ConfigError, match=re.escape("'a' and 'b' are both at 127.0.0.1:8001")):
        deploy.render("envoy", {"a": "127.0.0.1:8001", "b": "127.0.0.1:8001"})
    with pytest.raises(ConfigError, match="unknown load balancer 'apache'"):
        deploy.render("apache", THREE)


@pytest.mark.parametrize(("text", "message"), [
    ("a", "not id=host:port"), ("a=", "not id=host:port"), ("=127.0.0.1:1", "not id=host:port"),
    ("a=127.0.0.1:1,,b=127.0.0.1:2", "not id=host:port"),
    ("a=127.0.0.1:1,a=127.0.0.1:2", "listed twice"),
])
def test_instances_flag_is_parsed_strictly(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        deploy.parse_instances(text)


def test_instances_flag_keeps_order() -> None:
    assert deploy.parse_instances(" b=127.0.0.1:2, a=[::1]:1") == {
        "b": "127.0.0.1:2", "a": "[::1]:1"}


# --- examples/deploy --------------------------------------------------------------------------
@pytest.mark.parametrize("lb", deploy.LOAD_BALANCERS)
def test_committed_deploy_files_are_what_the_generator_writes(lb: str) -> None:
    committed = (DEPLOY / deploy.FILENAMES[lb]).read_text()
    assert committed == deploy.render(lb, THREE), (
        f"examples/deploy/{deploy.FILENAMES[lb]} is stale: regenerate it as "
        f"examples/deploy/README.md says")


def test_deploy_readme_names_every_file_and_how_to_regenerate() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for name in deploy.FILENAMES.values():
        assert f"`{name}`" in readme
    assert "sessionkit lb-config" in readme


# --- the real checkers ------------------------------------------------------------------------
def binary(name: str) -> str:
    return require_binary(name, f"apt-get install -y --no-install-recommends {name}")


def check(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"


CHECKED_COOKIES = ["session", "__Host-it's$#x"]


@pytest.mark.parametrize("cookie", CHECKED_COOKIES)
@pytest.mark.parametrize("instances", INSTANCE_SETS.values(), ids=INSTANCE_SETS.keys())
def test_haproxy_accepts_the_generated_config(
    instances: dict[str, str], cookie: str, tmp_path: Path,
) -> None:
    haproxy = binary("haproxy")
    config = tmp_path / "haproxy.cfg"
    config.write_text(render_haproxy(instances, cookie, "127.0.0.1:9090"))
    check([haproxy, "-c", "-q", "-f", str(config)])


@pytest.mark.parametrize("cookie", CHECKED_COOKIES)
@pytest.mark.parametrize("instances", INSTANCE_SETS.values(), ids=INSTANCE_SETS.keys())
def test_nginx_accepts_the_generated_config(
    instances: dict[str, str], cookie: str, tmp_path: Path,
) -> None:
    nginx = binary("nginx")
    config = tmp_path / "nginx.conf"
    config.write_text(render_nginx(instances, cookie, "127.0.0.1:9090",
                                            runtime_dir=str(tmp_path)))
    check([nginx, "-t", "-q", "-c", str(config), "-p", f"{tmp_path}/"])


def test_the_committed_haproxy_and_nginx_files_pass_their_checkers(tmp_path: Path) -> None:
    check([binary("haproxy"), "-c", "-q", "-f", str(DEPLOY / "haproxy.cfg")])
    nginx = binary("nginx")
    if os.geteuid() != 0:
        pytest.skip("nginx -t of a config that uses nginx's own log and temp paths needs root")
    check([nginx, "-t", "-q", "-c", str(DEPLOY / "nginx.conf"), "-p", f"{tmp_path}/",
           "-g", f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"])


def test_the_checkers_reject_a_broken_config(tmp_path: Path) -> None:
    """The two tests above can fail: a config with a typo does not pass."""
    haproxy, nginx = binary("haproxy"), binary("nginx")
    config = tmp_path / "broken.cfg"
    config.write_text(render_haproxy(THREE).replace("use-server", "use-servr"))
    with pytest.raises(AssertionError):
        check([haproxy, "-c", "-q", "-f", str(config)])
    config.write_text(render_nginx(THREE, runtime_dir=str(tmp_path))
                      .replace("proxy_pass", "proxy_pas"))
    with pytest.raises(AssertionError):
        check([nginx, "-t", "-q", "-c", str(config), "-p", f"{tmp_path}/"])


# --- the command line -------------------------------------------------------------------------
INSTANCES_FLAG = "a=127.0.0.1:8001,b=127.0.0.1:8002,c=127.0.0.1:8003"


@pytest.mark.parametrize("lb", deploy.LOAD_BALANCERS)
def test_cli_prints_the_config(lb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lb-config", lb, "--instances", INSTANCES_FLAG]) == 0
    out, err = capsys.readouterr()
    assert out == deploy.render(lb, THREE) and err == ""


def test_cli_passes_cookie_listen_and_runtime_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lb-config", "nginx", "--instances", "x=127.0.0.1:1", "--cookie", "sid",
                     "--listen", "127.0.0.1:9", "--runtime-dir", "/run/lb"]) == 0
    out = capsys.readouterr().out
    assert out == render_nginx({"x": "127.0.0.1:1"}, "sid", "127.0.0.1:9",
                                        runtime_dir="/run/lb")


@pytest.mark.parametrize(("args", "message"), [
    (["haproxy", "--instances", "A=127.0.0.1:1"], "instance='A' is not a valid instance id"),
    (["haproxy", "--instances", INSTANCES_FLAG, "--health-path", "healthz"], "health path"),
    (["haproxy", "--instances", "a=127.0.0.1"], "is not host:port"),
    (["nginx", "--instances", "a"], "not id=host:port"),
    (["envoy", "--instances", INSTANCES_FLAG, "--cookie", "a;b"], "cookie name 'a;b'"),
    (["traefik", "--instances", INSTANCES_FLAG, "--listen", "localhost"], "listen address"),
    (["haproxy", "--instances", INSTANCES_FLAG, "--runtime-dir", "/x"], "nginx only"),
])
def test_cli_bad_input_exits_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["lb-config", *args]) == cli.USAGE_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("sessionkit lb-config: error: ") and message in line


@pytest.mark.parametrize("args", [["apache", "--instances", INSTANCES_FLAG], ["haproxy"]])
def test_cli_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lb-config", *args]) == cli.USAGE_ERROR
    assert "error:" in capsys.readouterr().err


def test_cli_help_lists_every_load_balancer(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lb-config", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(lb in out for lb in deploy.LOAD_BALANCERS) and "--instances" in out
    assert cli.main(["--help"]) == 0
    assert "lb-config" in capsys.readouterr().out


def test_gc_subcommand_still_parses(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gc", "--help"]) == 0
    assert "--batch-size" in capsys.readouterr().out
    assert cli.main(["gc"]) == cli.USAGE_ERROR


def test_cli_runs_as_a_process_with_its_exit_status(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sessionkit.cli", "lb-config", "haproxy", "--instances"]
    ok = subprocess.run([*command, INSTANCES_FLAG], capture_output=True, text=True, timeout=60,
                        check=False, cwd=ROOT)
    assert ok.returncode == 0 and ok.stdout == deploy.render("haproxy", THREE)
    bad = subprocess.run([*command, "a=nowhere"], capture_output=True, text=True, timeout=60,
                         check=False, cwd=ROOT)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "sessionkit lb-config: error: instance 'a': 'nowhere' is not host:port (e.g. "
        "127.0.0.1:8001, app-1.internal:8000 or [::1]:8001)"]
