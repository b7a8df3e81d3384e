import { describe, expect, test } from 'bun:test'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { registry } from '../src/lib/metrics'
import { workerRegistry } from '../src/lib/worker-metrics'
import './helpers' // starts the app: the gauges /metrics samples are registered

// The alert rules, their unit tests, the Prometheus configuration and the Grafana dashboard under
// deploy/, checked by the real promtool (Debian's prometheus package; make test installs it).

const root = new URL('..', import.meta.url).pathname
const prometheusDir = join(root, 'deploy/prometheus')
const readYaml = (name: string) => Bun.YAML.parse(readFileSync(join(prometheusDir, name), 'utf8')) as any

function promtool(args: string[], cwd = prometheusDir) {
  const path = process.env.PROMTOOL_PATH || Bun.which('promtool')
  if (!path)
    throw new Error(
      "promtool not found: make test installs Debian's prometheus package when it runs as root (apt-get install prometheus), or set PROMTOOL_PATH",
    )
  const run = Bun.spawnSync([path, ...args], { cwd })
  return { code: run.exitCode, output: `${run.stdout}${run.stderr}` }
}

type Rule = { alert: string; expr: string }
const rules: Rule[] = readYaml('alerts.yml').groups.flatMap((group: { rules: Rule[] }) => group.rules)
const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/order-api.json'), 'utf8'))
const dashboardQueries: { panel: string; expr: string }[] = dashboard.panels.flatMap(
  (panel: { title: string; targets: { expr: string }[] }) =>
    panel.targets.map((target) => ({ panel: panel.title, expr: target.expr })),
)

/** The metric names a PromQL expression reads (not its functions, keywords, labels or durations). */
function metricNames(expr: string) {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  // Whole identifiers only (no backing off one letter to dodge the lookahead), not followed by `(`.
  const names = bare.match(/(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()/g) ?? []
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset'])
  return [...new Set(names.filter((name) => !keywords.has(name)))]
}

describe('alert rules (deploy/prometheus)', () => {
  test('promtool check rules: the rules are valid', () => {
    const { code, output } = promtool(['check', 'rules', 'alerts.yml'])
    expect(output).toContain('SUCCESS')
    expect(code).toBe(0)
  })

  test('promtool test rules: every test in alerts.test.yml passes', () => {
    const { code, output } = promtool(['test', 'rules', 'alerts.test.yml'])
    expect(output).toContain('SUCCESS')
    expect(code).toBe(0)
  })

  test('every alert has a test where it fires and one where it stays quiet', () => {
    const cases = readYaml('alerts.test.yml').tests.flatMap(
      (group: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }) => group.alert_rule_test,
    )
    expect(rules.length).toBeGreaterThanOrEqual(11)
    for (const { alert } of rules) {
      const mine = cases.filter((entry: { alertname: string }) => entry.alertname === alert)
      expect({ alert, fires: mine.some((entry: { exp_alerts: unknown[] }) => entry.exp_alerts.length > 0) }).toEqual({
        alert,
        fires: true,
      })
      expect({ alert, quiet: mine.some((entry: { exp_alerts: unknown[] }) => entry.exp_alerts.length === 0) }).toEqual({
        alert,
        quiet: true,
      })
    }
  })

  test('the rules and the dashboard read only metrics the API and the worker export', async () => {
    const exported = new Set(['up'])
    for (const metric of [...(await registry.getMetricsAsJSON()), ...(await workerRegistry.getMetricsAsJSON())]) {
      exported.add(metric.name)
      if (String(metric.type) === 'histogram')
        for (const suffix of ['_bucket', '_sum', '_count']) exported.add(metric.name + suffix)
    }
    const read = [...rules.map((rule) => rule.expr), ...dashboardQueries.map((query) => query.expr)].flatMap(
      metricNames,
    )
    expect(read).toContain('outbox_oldest_age_seconds')
    expect(read.filter((name) => !exported.has(name))).toEqual([])
  })

  test('the Prometheus configuration beside them is valid (scrape jobs with the metrics token, the rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'order-api-prometheus-'))
    try {
      cpSync(prometheusDir, dir, { recursive: true })
      const token = join(dir, 'metrics_token')
      writeFileSync(token, 'a-metrics-token-for-the-check')
      const config = readFileSync(join(dir, 'prometheus.yml'), 'utf8')
      expect(config).toContain('/run/secrets/order_api_metrics_token')
      writeFileSync(join(dir, 'prometheus.yml'), config.replaceAll('/run/secrets/order_api_metrics_token', token))
      const { code, output } = promtool(['check', 'config', 'prometheus.yml'], dir)
      expect(output).toContain('SUCCESS: 11 rules found')
      expect(code).toBe(0)
      const jobs = (Bun.YAML.parse(config) as any).scrape_configs.map((job: { job_name: string }) => job.job_name)
      expect(jobs).toEqual(['order-api', 'order-worker'])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('Grafana dashboard (deploy/grafana/order-api.json)', () => {
  test("every panel's query is valid PromQL (checked by promtool as recording rules)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'order-api-dashboard-'))
    try {
      expect(dashboardQueries.length).toBeGreaterThanOrEqual(10)
      const asRules = {
        groups: [
          {
            name: 'dashboard',
            rules: dashboardQueries.map((query, index) => ({ record: `dashboard:q${index}`, expr: query.expr })),
          },
        ],
      }
      writeFileSync(join(dir, 'dashboard.rules.yml'), JSON.stringify(asRules))
      const { code, output } = promtool(['check', 'rules', 'dashboard.rules.yml'], dir)
      expect(output).toContain(`SUCCESS: ${dashboardQueries.length} rules found`)
      expect(code).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('shows what an operator watches: orders placed, confirmed and rejected; batches; latency; queues; outbox age; webhooks; cache hits; memory', () => {
    const everything = dashboardQueries.map((query) => query.expr).join('\n')
    for (const metric of [
      'orders_placed_total',
      'orders_confirmed_total',
      'orders_rejected_total',
      'order_batch_size_bucket',
      'http_request_duration_seconds_bucket',
      'queue_jobs',
      'outbox_oldest_age_seconds',
      'webhook_attempts_total',
      'catalogue_cache_requests_total',
      'process_resident_memory_bytes',
    ])
      expect({ metric, shown: everything.includes(metric) }).toEqual({ metric, shown: true })
    expect(dashboard.templating.list[0]).toMatchObject({ name: 'datasource', type: 'datasource', query: 'prometheus' })
  })
})

test('metricNames finds the metrics of an expression, not its functions, labels or keywords', () => {
  expect(
    metricNames(
      'histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket{job="x", route!="a{b}"}[5m]))) > 0.5 and on (job) up == 1',
    ).sort(),
  ).toEqual(['http_request_duration_seconds_bucket', 'up'])
})
