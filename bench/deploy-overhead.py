#!/usr/bin/env python3
"""The platform's own overhead from `POST /api/v1/deployments` to the engine
process running. The engine is a custom one whose program is `date +%s%N`,
so its first log line is the moment it was exec'd, on the same clock
(CLOCK_REALTIME, ns) as time.time_ns() here. The difference is everything
aimaas does in between - parse, validate, plan, record deployment, instance,
reservation and task, answer, reconcile, build argv and env, posix_spawn -
plus the exec of `date` itself.   Usage: bench/deploy-overhead.py [RUNS]"""
import json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
d = tempfile.mkdtemp(prefix="aimaas-bench-")
os.mkdir(os.path.join(d, "models"))
subprocess.run(["node", os.path.join(ROOT, "tests/fixtures/make-models.mjs"), os.path.join(d, "models"), "bge-large-zh-v1.5"],
               check=True, stdout=subprocess.DEVNULL)
port = 18400 + os.getpid() % 500
env = dict(os.environ, AIMAAS_ADMIN_PASSWORD="bench-password")
srv = subprocess.Popen([os.path.join(ROOT, "build/aimaas"), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", d,
                        "--sim-gpus", "8x24GiB", "--log-level", "warn", "--stop-engines-on-exit"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"

def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

for _ in range(200):
    try:
        call("GET", "/healthz"); break
    except Exception:
        time.sleep(0.02)
tok = call("POST", "/api/v1/auth/login", {"username": "admin", "password": "bench-password"})["token"]
call("POST", "/api/v1/models", {"path": os.path.join(d, "models", "bge-large-zh-v1.5"), "name": "bge"}, tok)
call("PATCH", "/api/v1/engines/custom", {"argv": ["/usr/bin/date", "+%s%N"]}, tok)
samples = []
for i in range(runs):
    t0 = time.time_ns()
    dep = call("POST", "/api/v1/deployments", {"name": f"b{i}", "model": "bge", "engine": "custom"}, tok)
    log = os.path.join(d, "logs", "deployments", str(dep["id"]), "replica-0.log")
    started = None
    for _ in range(5000):
        try:
            m = re.search(r"^(\d{19})$", open(log).read(), re.M)
            if m:
                started = int(m.group(1)); break
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    samples.append((started - t0) / 1e6)
    call("DELETE", f"/api/v1/deployments/b{i}", None, tok)
samples.sort()
q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
print(f"POST -> engine process exec'd, {runs} deployments: median {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, "
      f"min {samples[0]:.2f} ms, max {samples[-1]:.2f} ms")
srv.send_signal(signal.SIGTERM)
srv.wait()
shutil.rmtree(d, ignore_errors=True)
