/**
 * The Grafana dashboard (grafana/postfix-mx-pattern-router.json) against the router's metrics:
 * every query names only metrics the router exports, read from the registry `createMetrics`
 * builds, so renaming or dropping a metric fails here instead of leaving an empty panel.
 *
 * @module
 */

import assert from "node:assert/strict";
import { idleSources } from "../support/metric_sources.ts";
import { createMetrics } from "../../lib/app/metrics.ts";
import { parseConfig } from "../../lib/routing/rules_file.ts";

const DASHBOARD_FILE = new URL("../../grafana/postfix-mx-pattern-router.json", import.meta.url);
const DATASOURCE_UID = "${datasource}";
const INSTANCE_MATCHER = 'instance=~"$instance"';

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}

interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  datasource?: { type?: string; uid?: string };
}

interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

/** A query of the dashboard and where it is, for failure messages. */
interface Query {
  where: string;
  expr: string;
}

async function readDashboard(): Promise<Dashboard> {
  return JSON.parse(await Deno.readTextFile(DASHBOARD_FILE));
}

/** Every panel target's query and every query variable's, each with where it is. */
function queriesOf(dashboard: Dashboard): Query[] {
  const queries: Query[] = [];
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      queries.push({ where: `panel "${panel.title}"`, expr: target.expr ?? "" });
    }
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== "query") continue;
    const query = typeof variable.query === "string" ? variable.query : variable.query?.query;
    queries.push({ where: `variable "${variable.name}"`, expr: query ?? "" });
  }
  return queries;
}

/** The metrics a router exports, by name, with their Prometheus type, from a scrape of its registry. */
async function exportedMetrics(): Promise<Map<string, string>> {
  const parsed = parseConfig(
    "pool:relays 1 relay:[a.example]:25 | 1 relay:[b.example]:25\nsuffix:outlook.com pool:relays\n",
    "dashboard-test.conf",
  );
  assert.ok(parsed.ok);
  const metrics = createMetrics(idleSources(parsed.value.ruleSet, {
    lookups: () => new Map([["microsoft365", { match: 0, nomatch: 0, tempfail: 0, invalid: 0 }]]),
  }));
  const server = metrics.serve({ hostname: "127.0.0.1", port: 0 });
  try {
    const { port } = server.addr as Deno.NetAddr;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    const text = await response.text();
    const types = new Map<string, string>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(name, type);
    return types;
  } finally {
    await server.shutdown();
  }
}

/** PromQL keywords that read like identifiers but name no metric. */
const PROMQL_KEYWORDS = new Set(["and", "or", "unless", "bool", "atan2", "inf", "nan"]);

/**
 * The metric names a PromQL query (or a Grafana `label_values(METRIC, LABEL)` variable query)
 * reads, once per occurrence: every identifier left once strings, label matchers, ranges,
 * grouping label lists, Grafana variables and numbers are taken out, that is not a function call
 * or a keyword.
 */
function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\blabel_values\s*\(\s*([^,()]*?)\s*,\s*[\w]+\s*\)/g, " $1 ")
    .replace(/\$\{[^}]*\}|\$\w+/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, " ")
    .replace(/\boffset\s+-?\w+/gi, " ")
    .replace(/(?<![\w:])(?:\d[\w.]*|\.\d\w*)/g, " ");
  const names: string[] = [];
  for (const match of stripped.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const name = match[0];
    const rest = stripped.slice(match.index + name.length);
    if (/^\s*\(/.test(rest) || PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    names.push(name);
  }
  return names;
}

/** The metric a series name belongs to: a histogram's `_bucket`, `_sum` and `_count` series map to it. */
function metricOf(series: string, exported: Map<string, string>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    const base = series.slice(0, -suffix.length);
    if (series.endsWith(suffix) && exported.get(base) === "histogram") return base;
  }
  return series;
}

/** Each query's metrics the router does not export, as "WHERE: NAME". */
function unknownMetrics(dashboard: Dashboard, exported: Map<string, string>): string[] {
  const unknown: string[] = [];
  for (const { where, expr } of queriesOf(dashboard)) {
    for (const series of metricNamesIn(expr)) {
      if (!exported.has(metricOf(series, exported))) unknown.push(`${where}: ${series}`);
    }
  }
  return unknown;
}

Deno.test("metricNamesIn reads metric names, not functions, labels, strings, variables or numbers", () => {
  assert.deepEqual(
    metricNamesIn(
      'histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance", x="b_total"}' +
        "[$__rate_interval])))\n/ on (job) group_left (version) sum(c_total offset 5m) > bool 1e3" +
        " and d_info unless rate(e_total[5m:1m]) * ${factor}",
    ),
    ["a_bucket", "c_total", "d_info", "e_total"],
  );
  assert.deepEqual(metricNamesIn("label_values(mxrouter_build_info, instance)"), [
    "mxrouter_build_info",
  ]);
  assert.deepEqual(metricNamesIn("sum(rate(x_total[1m])) by (result) or vector(0)"), ["x_total"]);
});

Deno.test("the router's registry is read: counters, gauges and histograms by their names", async () => {
  const exported = await exportedMetrics();
  assert.equal(exported.get("mxrouter_lookups_total"), "counter");
  assert.equal(exported.get("mxrouter_connections_open"), "gauge");
  assert.equal(exported.get("mxrouter_dns_duration_seconds"), "histogram");
  assert.equal(
    metricOf("mxrouter_dns_duration_seconds_bucket", exported),
    "mxrouter_dns_duration_seconds",
  );
  assert.equal(metricOf("mxrouter_lookups_total_count", exported), "mxrouter_lookups_total_count");
});

Deno.test("the dashboard is Grafana 10+ JSON with a Prometheus datasource and an instance variable", async () => {
  const dashboard = await readDashboard();
  assert.ok(
    dashboard.schemaVersion >= 38,
    `schemaVersion ${dashboard.schemaVersion} is before Grafana 10`,
  );
  const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  const datasource = variables.get("datasource");
  assert.equal(datasource?.type, "datasource");
  assert.equal(datasource?.query, "prometheus");
  const instance = variables.get("instance");
  assert.equal(instance?.type, "query");
  assert.equal(instance?.datasource?.uid, DATASOURCE_UID);
});

Deno.test("every panel has a title and a query, and queries through the datasource variable", async () => {
  const dashboard = await readDashboard();
  assert.ok(dashboard.panels.length > 0);
  for (const panel of dashboard.panels) {
    assert.ok(panel.title?.trim(), `a ${panel.type} panel has no title`);
    if (panel.type === "row") continue;
    assert.equal(panel.datasource?.uid, DATASOURCE_UID, `panel "${panel.title}": datasource`);
    assert.ok((panel.targets ?? []).length > 0, `panel "${panel.title}" has no target`);
    for (const target of panel.targets ?? []) {
      assert.ok(target.expr?.trim(), `panel "${panel.title}": a target without a query`);
      assert.equal(
        target.datasource?.uid,
        DATASOURCE_UID,
        `panel "${panel.title}": target datasource`,
      );
    }
  }
});

Deno.test("every query names only metrics the router exports", async () => {
  const exported = await exportedMetrics();
  const dashboard = await readDashboard();
  assert.ok(queriesOf(dashboard).every(({ expr }) => metricNamesIn(expr).length > 0));
  assert.deepEqual(
    unknownMetrics(dashboard, exported),
    [],
    "the router exports no such metric: fix the query, or export it in lib/app/metrics.ts",
  );
});

Deno.test("a misspelled metric, or a histogram suffix on a counter, is reported with its panel", async () => {
  const exported = await exportedMetrics();
  const panel = (title: string, expr: string): Panel => ({
    type: "timeseries",
    title,
    targets: [{ expr }],
  });
  const dashboard: Dashboard = {
    schemaVersion: 39,
    panels: [
      panel("good", "sum(rate(mxrouter_lookups_total[5m]))"),
      panel("misspelled", "sum(rate(mxrouter_lookup_total[5m]))"),
      panel("suffixed", "sum(rate(mxrouter_lookups_total_count[5m]))"),
      panel("histogram", "rate(mxrouter_dns_duration_seconds_sum[5m])"),
    ],
    templating: {
      list: [{ name: "instance", type: "query", query: "label_values(mxrouter_x, instance)" }],
    },
  };
  assert.deepEqual(unknownMetrics(dashboard, exported), [
    'panel "misspelled": mxrouter_lookup_total',
    'panel "suffixed": mxrouter_lookups_total_count',
    'variable "instance": mxrouter_x',
  ]);
});

Deno.test("every series in a panel query is filtered by the instance variable", async () => {
  const dashboard = await readDashboard();
  for (const panel of dashboard.panels) {
    for (const { expr } of panel.targets ?? []) {
      for (const name of metricNamesIn(expr!)) {
        const unfiltered = new RegExp(`\\b${name}\\b(?!\\{[^}]*${escape(INSTANCE_MATCHER)})`);
        assert.ok(
          !unfiltered.test(expr!),
          `panel "${panel.title}": ${name} without ${INSTANCE_MATCHER}`,
        );
      }
    }
  }
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
