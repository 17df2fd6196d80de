import type { TableLock } from './lock-sampler.js';

export interface RehearsalCase {
  revision: string;
  direction: 'up' | 'down' | 'reapply';
  ok: boolean;
  durationMs: number;
  message?: string;
  /** The schema diff when a down did not give back the schema its up started from. */
  diff?: string;
  warnings: string[];
  locks: TableLock[];
}

export interface RehearsalReport {
  ok: boolean;
  exitCode: number;
  where: string;
  from: string | null;
  data: string;
  revisions: string[];
  cases: RehearsalCase[];
  timings: {
    /** Start the throwaway (cluster or database) and open the sessions. */
    setupMs: number;
    /** Bring the throwaway to the starting revision and load the data: buildMs + dataMs. */
    seedMs: number;
    /** Applying the revisions up to --from (0 when restoring a snapshot, which brings its own). */
    buildMs: number;
    /** Loading --seed, or restoring --from-backup. */
    dataMs: number;
    cycleMs: number;
    /** Dropping the throwaway database or removing the ephemeral cluster. */
    teardownMs: number;
  };
}

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

const describeLocks = (locks: TableLock[]): string => locks.map((l) => `${l.table}: ${l.mode} ${l.heldMs} ms`).join('; ');

/** JUnit XML: one test case per revision per direction. */
export function toJunit(report: RehearsalReport): string {
  const failures = report.cases.filter((c) => !c.ok).length;
  const seconds = (ms: number): string => (ms / 1000).toFixed(3);
  const cases = report.cases.map((c) => {
    const name = `${c.direction} ${c.revision}`;
    const out = [c.locks.length > 0 ? `locks: ${describeLocks(c.locks)}` : '', ...c.warnings.map((w) => `warning: ${w}`)].filter(Boolean).join('\n');
    const failure = c.ok ? '' : `\n    <failure message="${escapeXml(c.message ?? 'failed')}">${escapeXml([c.message, c.diff].filter(Boolean).join('\n'))}</failure>`;
    const systemOut = out ? `\n    <system-out>${escapeXml(out)}</system-out>` : '';
    return `  <testcase classname="belay.rehearse" name="${escapeXml(name)}" time="${seconds(c.durationMs)}">${failure}${systemOut}\n  </testcase>`;
  });
  const total = report.cases.reduce((sum, c) => sum + c.durationMs, 0);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="${report.cases.length}" failures="${failures}" time="${seconds(total)}">\n<testsuite name="belay rehearse" tests="${report.cases.length}" failures="${failures}" errors="0" skipped="0" time="${seconds(total)}">\n${cases.join('\n')}\n</testsuite>\n</testsuites>\n`;
}

/** A Markdown summary for a CI job page. */
export function toMarkdown(report: RehearsalReport): string {
  const lines = [
    `## belay rehearse: ${report.ok ? 'passed' : 'FAILED'}`,
    '',
    `On ${report.where}, from ${report.from ?? 'scratch'}, with ${report.data}. Setup ${report.timings.setupMs} ms, data ${report.timings.seedMs} ms, cycle ${report.timings.cycleMs} ms, teardown ${report.timings.teardownMs} ms.`,
    '',
    '| revision | direction | result | time | strongest locks |',
    '| --- | --- | --- | --- | --- |',
    ...report.cases.map((c) => `| ${c.revision} | ${c.direction} | ${c.ok ? (c.warnings.length > 0 ? 'ok (warning)' : 'ok') : '**failed**'} | ${c.durationMs} ms | ${describeLocks(c.locks.slice(0, 3)) || '—'} |`),
  ];
  for (const c of report.cases.filter((x) => !x.ok || x.warnings.length > 0)) {
    lines.push('', `### ${c.direction} ${c.revision}`, '', ...(c.message ? [c.message] : []), ...c.warnings.map((w) => `- warning: ${w}`));
    if (c.diff) lines.push('', '```diff', c.diff, '```');
  }
  return `${lines.join('\n')}\n`;
}

export function toText(report: RehearsalReport): string {
  const lines = [`rehearsal on ${report.where}, from ${report.from ?? 'scratch'}, with ${report.data}: ${report.ok ? 'passed' : 'FAILED'}`];
  for (const c of report.cases) {
    lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.direction.padEnd(7)} ${c.revision} (${c.durationMs} ms)${c.locks[0] ? `  strongest lock: ${c.locks[0].table} ${c.locks[0].mode} ${c.locks[0].heldMs} ms` : ''}`);
    if (c.message) lines.push(`       ${c.message}`);
    for (const w of c.warnings) lines.push(`       warning: ${w}`);
    if (c.diff) lines.push(c.diff.split('\n').map((l) => `       ${l}`).join('\n'));
  }
  lines.push(`  setup ${report.timings.setupMs} ms, data ${report.timings.seedMs} ms, cycle ${report.timings.cycleMs} ms, teardown ${report.timings.teardownMs} ms`);
  return lines.join('\n');
}
