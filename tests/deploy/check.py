"""Offline checks of deploy/: every Kubernetes manifest validates against the Kubernetes
schemas (kubernetes-validate --strict), every setting the manifests and the systemd
environment file give the server is one the binary reads (its --help lists the variables),
and HAProxy accepts the cluster front's configuration (haproxy -c).

Usage: python tests/deploy/check.py CAMERATA_BINARY
"""
import glob
import re
import shutil
import subprocess
import sys

import yaml

ROOT = __file__.rsplit("/tests/", 1)[0]
binary = sys.argv[1]
manifests = sorted(glob.glob(f"{ROOT}/deploy/kubernetes/*.yaml"))
subprocess.run(
    [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *manifests],
    check=True,
)

known = set(re.findall(r"env: ([A-Z_]+)", subprocess.run(
    [binary, "--help"], check=True, capture_output=True, text=True).stdout))
# Variables the manifests define for their own use (composed into others), not the server's.
own = {"POD_NAME", "CAMERATA_DOMAIN"}

given = {}
for path in manifests:
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        if doc["kind"] == "ConfigMap":
            for k in doc.get("data", {}):
                given[k] = path
        if doc["kind"] == "Secret":
            for k in doc.get("stringData", {}):
                if not k.startswith("tls."):
                    given[k] = path
        if doc["kind"] == "StatefulSet":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    given[e["name"]] = path
for line in open(f"{ROOT}/deploy/systemd/camerata.env"):
    m = re.match(r"#?([A-Z][A-Z_]+)=", line.strip())
    if m:
        given[m.group(1)] = "deploy/systemd/camerata.env"

unknown = sorted(f"{k} ({p})" for k, p in given.items() if k not in known and k not in own)
if unknown:
    sys.exit("settings the server does not read: " + ", ".join(unknown))
subprocess.run([shutil.which("haproxy") or "/usr/sbin/haproxy", "-c", "-q", "-f", f"{ROOT}/deploy/haproxy/haproxy.cfg"], check=True)
unit = open(f"{ROOT}/deploy/systemd/camerata.service").read()
assert "EnvironmentFile=/etc/camerata/camerata.env" in unit
print(f"deploy: {len(manifests)} manifests valid, {len(given)} settings known to the server")
