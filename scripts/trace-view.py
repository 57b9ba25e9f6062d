#!/usr/bin/env python3
"""trace-view.py TRACE_ID [OUT.html]: render one trace from the local Jaeger's
query API (http://localhost:16686/api/traces/ID) as a static waterfall page.

The Jaeger binary built from the Go module proxy (make traces-build) has no UI
assets (they come from a separate npm build), but its query API works; this
page is the viewer. Open the file in a browser, or screenshot it headless."""
import html, json, sys, urllib.request

tid = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else f".run/trace-{tid}.html"
base = "http://localhost:16686"
data = json.load(urllib.request.urlopen(f"{base}/api/traces/{tid}"))["data"][0]
procs = {k: v["serviceName"] for k, v in data["processes"].items()}
spans = data["spans"]
by_id = {s["spanID"]: s for s in spans}
children = {}
roots = []
for s in spans:
    parent = next((r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF" and r["spanID"] in by_id), None)
    (children.setdefault(parent, []) if parent else roots).append(s)
t0 = min(s["startTime"] for s in spans)
t1 = max(s["startTime"] + s["duration"] for s in spans)
total = max(t1 - t0, 1)
colors = {"api-gateway": "#4e79a7", "pipeline-worker": "#f28e2b", "ws-edge": "#59a14f"}
rows = []

def walk(s, depth):
    tags = {t["key"]: t["value"] for t in s.get("tags", [])}
    left = (s["startTime"] - t0) / total * 100
    width = max(s["duration"] / total * 100, 0.3)
    svc = procs[s["processID"]]
    mid = tags.get("courier.message.id", "")
    rows.append(f'<tr><td class="svc" style="color:{colors.get(svc, "#777")}">{html.escape(svc)}</td>'
                f'<td class="name" style="padding-left:{8 + depth * 14}px">{html.escape(s["operationName"])}</td>'
                f'<td class="bar"><div style="margin-left:{left:.2f}%;width:{width:.2f}%;background:{colors.get(svc, "#999")}"></div></td>'
                f'<td class="dur">{s["duration"] / 1000:.1f} ms</td><td class="mid">{html.escape(str(mid))}</td></tr>')
    for c in sorted(children.get(s["spanID"], []), key=lambda x: x["startTime"]):
        walk(c, depth + 1)

for r in sorted(roots, key=lambda x: x["startTime"]):
    walk(r, 0)
services = sorted(set(procs.values()))
page = f"""<!doctype html><meta charset="utf-8"><title>trace {tid}</title>
<style>body{{font:13px system-ui,sans-serif;margin:16px}} table{{border-collapse:collapse;width:100%}}
td{{padding:3px 6px;border-bottom:1px solid #eee;white-space:nowrap}} td.bar{{width:45%}} td.bar div{{height:12px;border-radius:2px}}
td.svc{{font-weight:600}} td.dur,td.mid{{color:#555;font-family:monospace}} h1{{font-size:16px}}</style>
<h1>Trace {tid} — {len(spans)} spans, {total / 1000:.1f} ms, services: {", ".join(services)}</h1>
<table><tr><th>service</th><th>span</th><th>timeline</th><th>duration</th><th>courier.message.id</th></tr>{"".join(rows)}</table>"""
with open(out, "w") as f:
    f.write(page)
print(out)
