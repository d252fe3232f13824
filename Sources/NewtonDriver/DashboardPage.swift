/// The dashboard's single page: plain HTML, CSS and JavaScript drawing SVG,
/// with nothing loaded from elsewhere. It polls `Dashboard`'s JSON once a
/// second; each chart's `<figure>` carries `data-points`, `data-last-iteration`
/// and `data-last-value` so a test (or a curious user) can read what it shows.
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>newtonps</title>
        <link rel="icon" href="data:,">
        <style>
          :root { --ink: #1d2430; --muted: #6b7380; --line: #d9dde3; --accent: #2563eb; --good: #15803d; --bad: #b91c1c; }
          body { font: 14px/1.4 system-ui, sans-serif; color: var(--ink); margin: 0; background: #f6f7f9; }
          header { display: flex; align-items: baseline; gap: 1em; padding: 0.8em 1.5em; background: #fff; border-bottom: 1px solid var(--line); }
          header h1 { font-size: 1.2em; margin: 0; }
          #status { color: var(--muted); }
          main { padding: 1em 1.5em; display: grid; gap: 1.2em; }
          section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 0.8em 1em; }
          h2 { font-size: 1em; margin: 0 0 0.6em; }
          table { border-collapse: collapse; width: 100%; }
          th, td { text-align: left; padding: 0.25em 0.6em; border-bottom: 1px solid var(--line); white-space: nowrap; }
          th { color: var(--muted); font-weight: 600; }
          td.num { text-align: right; font-variant-numeric: tabular-nums; }
          #jobs tbody tr { cursor: pointer; }
          #jobs tbody tr.selected { background: #e8efff; }
          .state-running, .live { color: var(--accent); font-weight: 600; }
          .state-succeeded { color: var(--good); }
          .state-failed, .silent { color: var(--bad); }
          #job-meta { color: var(--muted); margin-bottom: 0.6em; white-space: pre-wrap; }
          #charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 0.8em; }
          figure { margin: 0; border: 1px solid var(--line); border-radius: 4px; padding: 0.4em; }
          figcaption { display: flex; justify-content: space-between; font-weight: 600; }
          figcaption .last { color: var(--muted); font-weight: normal; font-variant-numeric: tabular-nums; }
          svg { width: 100%; height: auto; display: block; }
          svg .axis { stroke: var(--line); }
          svg text { font-size: 10px; fill: var(--muted); }
          svg polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
          svg circle { fill: var(--accent); }
          #token-form[hidden] { display: none; }
        </style>
        </head>
        <body>
        <header><h1>newtonps</h1><span id="status">connecting…</span></header>
        <main>
          <section id="token-form" hidden>
            <h2>Cluster token</h2>
            <p>This driver needs its cluster token (the file given to <code>--token-file</code>).</p>
            <form><input id="token" type="password" size="70" autocomplete="off"> <button>Use</button></form>
          </section>
          <section><h2>Cluster</h2>
            <table id="members"><thead><tr><th>role</th><th>id</th><th>gRPC</th><th>HTTP</th><th>health</th></tr></thead><tbody></tbody></table>
          </section>
          <section><h2>Jobs</h2>
            <table id="jobs"><thead><tr><th>id</th><th>name</th><th>optimizer</th><th>state</th><th>iteration</th><th>objective</th><th>test accuracy</th></tr></thead><tbody></tbody></table>
          </section>
          <section id="job" hidden>
            <h2 id="job-title"></h2>
            <div id="job-meta"></div>
            <div id="charts"></div>
          </section>
        </main>
        <script>
        "use strict";
        const CHARTS = [
          { key: "objective", title: "objective", log: true },
          { key: "test_accuracy", title: "test accuracy", percent: true },
          { key: "grad_norm", title: "‖g‖", log: true },
          { key: "lambda", title: "λ (damping)", log: true },
          { key: "cg_iterations", title: "CG iterations" },
          { key: "bytes_moved", title: "bytes moved by the driver", bytes: true },
          { key: "disagreement", title: "disagreement (1/I)Σ‖wᵢ − w̄‖²", log: true },
          { key: "bytes_sent", title: "bytes sent per agent", bytes: true },
        ];
        const state = { token: null, jobs: [], selected: null, pinned: false, records: [], job: null };
        window.dashboard = state;

        function readToken() {
          const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
          if (match) {
            sessionStorage.setItem("newtonps-token", decodeURIComponent(match[1]));
            history.replaceState(null, "", location.pathname);
          }
          state.token = sessionStorage.getItem("newtonps-token");
        }

        class Unauthorized extends Error {}

        async function api(path) {
          const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
          const response = await fetch(path, { headers, cache: "no-store" });
          if (response.status === 401) throw new Unauthorized(await response.text());
          if (!response.ok) throw new Error(path + ": " + response.status + " " + (await response.text()));
          return response.json();
        }

        function cell(row, text, className) {
          const td = row.insertCell();
          td.textContent = text;
          if (className) td.className = className;
          return td;
        }

        function number(value, digits) {
          return typeof value === "number" && Number.isFinite(value) ? value.toPrecision(digits || 6) : "–";
        }

        function bytes(value) {
          if (typeof value !== "number" || !Number.isFinite(value)) return "–";
          const units = ["B", "kB", "MB", "GB"];
          let unit = 0;
          while (Math.abs(value) >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
          return value.toFixed(unit ? 2 : 0) + " " + units[unit];
        }

        function format(chart, value) {
          if (chart.percent) return (value * 100).toFixed(2) + " %";
          if (chart.bytes) return bytes(value);
          return String(Number(value.toPrecision(5)));
        }

        function renderMembers(members) {
          const body = document.querySelector("#members tbody");
          body.replaceChildren();
          for (const m of members) {
            const row = body.insertRow();
            cell(row, m.role);
            cell(row, m.id);
            cell(row, m.endpoint || "–");
            cell(row, m.http);
            cell(row, (m.live ? "live" : "silent") + " (heard " + m.seconds_since_heartbeat.toFixed(1) + " s ago)", m.live ? "live" : "silent");
          }
          const live = members.filter(m => m.live);
          const count = role => live.filter(m => m.role === role).length;
          document.getElementById("status").textContent =
            count("server") + " server(s), " + count("worker") + " worker(s), " + count("agent") + " agent(s) live";
        }

        function renderJobs() {
          const body = document.querySelector("#jobs tbody");
          body.replaceChildren();
          for (const job of state.jobs) {
            const row = body.insertRow();
            row.dataset.job = job.id;
            if (job.id === state.selected) row.className = "selected";
            row.addEventListener("click", () => { select(job.id); state.pinned = true; });
            cell(row, job.id);
            cell(row, job.name);
            cell(row, job.optimizer || "–");
            cell(row, job.state, "state-" + job.state);
            cell(row, job.iterations + (job.max_iterations != null ? " / " + job.max_iterations : ""), "num");
            cell(row, number(job.objective), "num");
            cell(row, typeof job.test_accuracy === "number" ? (job.test_accuracy * 100).toFixed(2) + " %" : "–", "num");
          }
        }

        function select(id) {
          if (state.selected === id) return;
          state.selected = id;
          state.records = [];
          state.job = null;
          document.getElementById("charts").replaceChildren();
          renderJobs();
        }

        function chooseJob() {
          if (state.pinned && state.jobs.some(j => j.id === state.selected)) return;
          const running = state.jobs.find(j => j.state === "running");
          const latest = state.jobs[state.jobs.length - 1];
          const pick = running || latest;
          if (pick) select(pick.id);
        }

        async function refreshRecords() {
          if (!state.selected) return;
          const last = state.records.length ? state.records[state.records.length - 1].iteration : null;
          const query = "/api/records?job=" + encodeURIComponent(state.selected) + (last === null ? "" : "&after=" + last);
          const answer = await api(query);
          if (answer.job.id !== state.selected) return;
          // A job that restarted from a checkpoint rewrote its later records.
          if (last !== null && answer.job.iterations < last) { state.records = []; return; }
          const changed = !state.job || answer.records.length || JSON.stringify(answer.job) !== JSON.stringify(state.job);
          state.job = answer.job;
          state.records.push(...answer.records);
          if (changed) renderJob();
        }

        function renderJob() {
          const job = state.job;
          document.getElementById("job").hidden = false;
          document.getElementById("job-title").textContent = job.id + " — " + job.name + " (" + job.state + ")";
          const records = state.records;
          const lastRecord = records[records.length - 1];
          let meta = (job.optimizer || "") + "  iteration " + job.iterations + (job.max_iterations != null ? " of " + job.max_iterations : "");
          if (lastRecord && job.state === "running" && job.max_iterations && lastRecord.iteration > 0) {
            const perIteration = lastRecord.elapsed_s / lastRecord.iteration;
            meta += "  ·  ETA " + Math.max(0, (job.max_iterations - lastRecord.iteration) * perIteration).toFixed(0) + " s";
          }
          if (job.stop_reason) meta += "  ·  stopped: " + job.stop_reason;
          if (job.error) meta += "\nerror: " + job.error;
          document.getElementById("job-meta").textContent = meta;
          for (const chart of CHARTS) {
            const points = records
              .filter(r => typeof r[chart.key] === "number" && Number.isFinite(r[chart.key]) && (!chart.log || r[chart.key] > 0))
              .map(r => [r.iteration, r[chart.key]]);
            if (points.length) draw(chart, points);
          }
        }

        const SVG = "http://www.w3.org/2000/svg";
        function svgElement(name, attributes, text) {
          const element = document.createElementNS(SVG, name);
          for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
          if (text !== undefined) element.textContent = text;
          return element;
        }

        function ticks(low, high, log) {
          if (log) {
            // Powers of ten, or 1-2-5 steps within a decade or two.
            const steps = Math.floor(high) - Math.ceil(low) >= 1 ? [1] : [1, 2, 5];
            const out = [];
            for (let e = Math.floor(low); e <= Math.ceil(high); e++) {
              for (const m of steps) {
                const t = e + Math.log10(m);
                if (t >= low && t <= high) out.push(t);
              }
            }
            return out.length ? out : [low, high];
          }
          const span = high - low;
          const step = Math.pow(10, Math.floor(Math.log10(span / 4)));
          const nice = [1, 2, 5, 10].map(m => m * step).find(s => span / s <= 5);
          const out = [];
          for (let t = Math.ceil(low / nice) * nice; t <= high + 1e-12; t += nice) out.push(t);
          return out;
        }

        function draw(chart, points) {
          let figure = document.getElementById("chart-" + chart.key);
          if (!figure) {
            figure = document.createElement("figure");
            figure.id = "chart-" + chart.key;
            figure.className = "chart";
            const caption = document.createElement("figcaption");
            caption.append(document.createTextNode(chart.title), Object.assign(document.createElement("span"), { className: "last" }));
            figure.append(caption, svgElement("svg", { viewBox: "0 0 360 180", role: "img", "aria-label": chart.title }));
            document.getElementById("charts").append(figure);
          }
          const [lastX, lastY] = points[points.length - 1];
          figure.dataset.points = points.length;
          figure.dataset.lastIteration = lastX;
          figure.dataset.lastValue = lastY;
          figure.querySelector(".last").textContent = "iteration " + lastX + ": " + format(chart, lastY);

          const svg = figure.querySelector("svg");
          svg.replaceChildren();
          const [left, right, top, bottom] = [58, 350, 8, 156];
          const ys = points.map(p => (chart.log ? Math.log10(p[1]) : p[1]));
          let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
          if (y1 - y0 < 1e-12 * Math.max(1, Math.abs(y1))) { y0 -= chart.log ? 0.5 : Math.max(1e-9, Math.abs(y0) * 0.05); y1 = 2 * ys[0] - y0; }
          const pad = (y1 - y0) * 0.05;
          y0 -= pad; y1 += pad;
          const x0 = points[0][0];
          const x1 = Math.max(lastX, x0 + 1);
          const sx = x => left + ((x - x0) / (x1 - x0)) * (right - left);
          const sy = y => bottom - ((y - y0) / (y1 - y0)) * (bottom - top);

          svg.append(svgElement("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }));
          svg.append(svgElement("line", { class: "axis", x1: left, y1: top, x2: left, y2: bottom }));
          for (const t of ticks(y0, y1, chart.log)) {
            const value = chart.log ? Math.pow(10, t) : t;
            svg.append(svgElement("line", { class: "axis", x1: left - 3, y1: sy(t), x2: right, y2: sy(t), "stroke-dasharray": "2 3" }));
            svg.append(svgElement("text", { x: left - 5, y: sy(t) + 3, "text-anchor": "end" }, format(chart, value)));
          }
          for (const t of ticks(x0, x1, false).filter(t => Number.isInteger(t))) {
            svg.append(svgElement("text", { x: sx(t), y: bottom + 13, "text-anchor": "middle" }, String(t)));
          }
          svg.append(svgElement("text", { x: right, y: 176, "text-anchor": "end" }, "iteration"));
          svg.append(svgElement("polyline", { points: points.map((p, i) => sx(p[0]) + "," + sy(ys[i])).join(" ") }));
          svg.append(svgElement("circle", { cx: sx(lastX), cy: sy(ys[ys.length - 1]), r: 2.5 }));
        }

        async function poll() {
          try {
            const [jobs, cluster] = await Promise.all([api("/api/jobs"), api("/api/cluster")]);
            state.jobs = jobs.jobs;
            renderMembers(cluster.members);
            chooseJob();
            renderJobs();
            await refreshRecords();
            document.getElementById("token-form").hidden = true;
          } catch (error) {
            if (error instanceof Unauthorized) {
              document.getElementById("token-form").hidden = false;
              document.getElementById("status").textContent = "needs the cluster token";
              return;
            }
            document.getElementById("status").textContent = "driver unreachable: " + error.message;
          }
          setTimeout(poll, 1000);
        }

        document.querySelector("#token-form form").addEventListener("submit", event => {
          event.preventDefault();
          sessionStorage.setItem("newtonps-token", document.getElementById("token").value.trim());
          state.token = sessionStorage.getItem("newtonps-token");
          poll();
        });
        readToken();
        poll();
        </script>
        </body>
        </html>
        """#
}
