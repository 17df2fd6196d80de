import { showControls } from '../control-chars.js';
import type { ClusterChange } from './cluster-state.js';
import type { TableLock } from './lock-sampler.js';

export interface RehearsalCase {
  revision: string;
  /** up: applied on the state its predecessors left; down: judged against the state right before its up; reapply: its up again, right after its own down. */
  direction: 'up' | 'down' | 'reapply';
  /** skipped: could not be tried (the message says why); never a failure, never a pass. */
  status: 'passed' | 'failed' | 'skipped';
  /** Not failed. */
  ok: boolean;
  /** The revision's own run. */
  durationMs: number;
  /** The whole case: the run and its checks (schema, data, health), as JUnit's time. */
  wallMs: number;
  message?: string;
  /** The schema diff, object by object, when a down did not give back the schema its up started from. */
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
  /** Configured checks a rehearsal does not run (HTTP and command checks probe the application, which does not use the throwaway). */
  checksNotRun: string[];
  /** What rehearsals killed outright had left (their ephemeral clusters), removed before this one ran, or named where that failed. */
  orphans: string[];
  /** On a real server: what the rehearsal made or changed beside its throwaway (roles, their settings, replication slots, tablespaces) and its downs did not undo, with what to run. */
  leftOnServer: ClusterChange[];
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

/** Text as XML 1.0 character data: control characters shown escaped (XML cannot carry them, not even as references), besides the markup. */
const escapeXml = (text: string): string =>
  showControls(text)
    .replace(/[\uFFFE\uFFFF]|\p{Cs}/gu, '\uFFFD')
    .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

const describeLocks = (locks: TableLock[]): string => locks.map((l) => `${l.table}: ${l.mode} ${l.heldMs} ms`).join('; ');

/** JUnit XML: one test case per revision per direction; `time` is each case's wall time, skipped cases say why. */
export function toJunit(report: RehearsalReport): string {
  const failures = report.cases.filter((c) => c.status === 'failed').length;
  const skipped = report.cases.filter((c) => c.status === 'skipped').length;
  const seconds = (ms: number): string => (ms / 1000).toFixed(3);
  const cases = report.cases.map((c) => {
    const name = `${c.direction} ${c.revision}`;
    const out = [c.locks.length > 0 ? `locks: ${describeLocks(c.locks)}` : '', ...c.warnings.map((w) => `warning: ${w}`)].filter(Boolean).join('\n');
    const verdict =
      c.status === 'failed'
        ? `\n    <failure message="${escapeXml(c.message ?? 'failed')}">${escapeXml([c.message, c.diff].filter(Boolean).join('\n'))}</failure>`
        : c.status === 'skipped'
          ? `\n    <skipped message="${escapeXml(c.message ?? 'not tried')}"/>`
          : '';
    const systemOut = out ? `\n    <system-out>${escapeXml(out)}</system-out>` : '';
    return `  <testcase classname="belay.rehearse" name="${escapeXml(name)}" time="${seconds(c.wallMs)}">${verdict}${systemOut}\n  </testcase>`;
  });
  const total = report.cases.reduce((sum, c) => sum + c.wallMs, 0);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="${report.cases.length}" failures="${failures}" skipped="${skipped}" time="${seconds(total)}">\n<testsuite name="belay rehearse" tests="${report.cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${seconds(total)}">\n${cases.join('\n')}\n</testsuite>\n</testsuites>\n`;
}

const RESULT = { passed: 'ok', failed: '**failed**', skipped: 'skipped' } as const;

/** A Markdown summary for a CI job page. */
export function toMarkdown(report: RehearsalReport): string {
  const lines = [
    `## belay rehearse: ${report.ok ? 'passed' : 'FAILED'}`,
    '',
    `On ${report.where}, from ${report.from ?? 'scratch'}, with ${report.data}. Setup ${report.timings.setupMs} ms, data ${report.timings.seedMs} ms, cycle ${report.timings.cycleMs} ms, teardown ${report.timings.teardownMs} ms.`,
    ...(report.checksNotRun.length > 0 ? ['', `Not run here (they probe the application, which does not use the throwaway): ${report.checksNotRun.join(', ')}.`] : []),
    '',
    '| revision | direction | result | time | strongest locks |',
    '| --- | --- | --- | --- | --- |',
    ...report.cases.map((c) => `| ${c.revision} | ${c.direction} | ${RESULT[c.status]}${c.status === 'passed' && c.warnings.length > 0 ? ' (warning)' : ''} | ${c.wallMs} ms | ${describeLocks(c.locks.slice(0, 3)) || '—'} |`),
  ];
  if (report.leftOnServer.length > 0) lines.push('', `**Left on the server** (dropping the throwaway does not remove it): ${report.leftOnServer.map((change) => change.said).join(', ')}.`);
  for (const c of report.cases.filter((x) => x.status === 'failed' || x.warnings.length > 0)) {
    lines.push('', `### ${c.direction} ${c.revision}`, '', ...(c.message ? [c.message] : []), ...c.warnings.map((w) => `- warning: ${w}`));
    if (c.diff) lines.push('', '```diff', c.diff, '```');
  }
  return `${showControls(lines.join('\n'))}\n`;
}

/** How many cases from `start` on are skipped for the same reason as it. */
function alikeSkips(cases: RehearsalCase[], start: number): number {
  const { message } = cases[start]!;
  let end = start;
  while (cases[end + 1]?.status === 'skipped' && cases[end + 1]!.message === message) end++;
  return end - start + 1;
}

export function toText(report: RehearsalReport): string {
  const lines = [`rehearsal on ${report.where}, from ${report.from ?? 'scratch'}, with ${report.data}: ${report.ok ? 'passed' : 'FAILED'}`];
  for (let index = 0; index < report.cases.length; index++) {
    const c = report.cases[index]!;
    // every revision after an up that failed is skipped alike: one line for them all (the JSON and JUnit reports keep each case)
    const alike = c.status === 'skipped' ? report.cases.slice(index, index + alikeSkips(report.cases, index)) : [c];
    const last = alike.at(-1)!;
    if (last.revision !== c.revision) {
      lines.push(`  skip ${c.revision} … ${last.revision} (${new Set(alike.map((x) => x.revision)).size} revisions)`, `       ${c.message ?? 'not tried'}`);
      index += alike.length - 1;
      continue;
    }
    lines.push(`  ${{ passed: 'ok  ', failed: 'FAIL', skipped: 'skip' }[c.status]} ${c.direction.padEnd(7)} ${c.revision} (${c.wallMs} ms)${c.locks[0] ? `  strongest lock: ${c.locks[0].table} ${c.locks[0].mode} ${c.locks[0].heldMs} ms` : ''}`);
    if (c.message) lines.push(`       ${c.message}`);
    for (const w of c.warnings) lines.push(`       warning: ${w}`);
    if (c.diff) lines.push(c.diff.split('\n').map((l) => `       ${l}`).join('\n'));
  }
  if (report.checksNotRun.length > 0) lines.push(`  not run here (they probe the application, which does not use the throwaway): ${report.checksNotRun.join(', ')}`);
  for (const orphan of report.orphans) lines.push(`  ${orphan}`);
  for (const change of report.leftOnServer) lines.push(`  left on the server: ${change.said}${change.fix ? ` (${change.fix})` : ''}`);
  lines.push(`  setup ${report.timings.setupMs} ms, data ${report.timings.seedMs} ms, cycle ${report.timings.cycleMs} ms, teardown ${report.timings.teardownMs} ms`);
  return lines.join('\n');
}
