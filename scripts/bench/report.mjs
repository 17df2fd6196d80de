// The results as a terminal table, as the JSON document and as the tables of
// docs/performance.md.
import os from 'node:os';

export function formatMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0)} ms`;
}

const formatRatio = (ratio) => (ratio === null || ratio === undefined ? '—' : `${ratio.toFixed(2)}×`);

export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

function rowsOf(table) {
  if (table.columns) return { head: table.columns, rows: table.cells };
  const perItem = table.rows.some((r) => r.perItem !== undefined);
  const ratio = Boolean(table.baseline);
  const head = ['command', 'median', 'min', 'max', ...(ratio ? [`× ${table.baseline}`] : []), ...(perItem ? [`per ${table.itemName}`] : []), 'n'];
  const rows = table.rows.map((r) => [
    r.command,
    formatMs(r.median),
    formatMs(r.min),
    formatMs(r.max),
    ...(ratio ? [formatRatio(r.ratio)] : []),
    ...(perItem ? [formatMs(r.perItem)] : []),
    String(r.n),
  ]);
  return { head, rows };
}

function textTable(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function markdownTable(head, rows, { numeric = true } = {}) {
  const escape = (cell) => cell.replaceAll('|', '\\|');
  return [`| ${head.map(escape).join(' | ')} |`, `| ${head.map((_, i) => (i === 0 || !numeric ? '---' : '---:')).join(' | ')} |`, ...rows.map((r) => `| ${r.map(escape).join(' | ')} |`)].join('\n');
}

const targetMark = (met) => (met === true ? 'met' : met === false ? 'MISSED' : 'n/a');

export function caseText(result) {
  const out = [`\n== ${result.title} ==`];
  if (result.error) out.push(`  FAILED: ${result.error}`);
  for (const skip of result.skipped ?? []) out.push(`  ${skip.name}: ${skip.reason}`);
  for (const table of result.tables ?? []) {
    const { head, rows } = rowsOf(table);
    out.push(`\n  ${table.name}`);
    out.push(textTable(head, rows).replace(/^/gm, '  '));
    if (table.note) out.push(`  note: ${table.note}`);
  }
  for (const line of result.summaryLines ?? []) out.push(`  ${line}`);
  return out.join('\n');
}

export function targetsText(targets) {
  const rows = targets.map((t) => [targetMark(t.met), t.name, t.goal, t.value]);
  return `\n== Targets (reported, never enforced) ==\n${textTable(['', 'target', 'goal', 'value'], rows).replace(/^/gm, '  ')}`;
}

export function settingsText(postgres) {
  const lines = Object.entries(postgres.settings).map(([k, v]) => `  ${k.padEnd(32)} ${v}`);
  return `== PostgreSQL (throwaway cluster) ==\n${lines.join('\n')}\n  note: ${postgres.note}`;
}

/** The results part of docs/performance.md. */
export function resultsMarkdown(report) {
  const out = [];
  const m = report.machine;
  out.push(
    `Run ${report.generatedAt} with \`${report.command}\` (${Math.round(report.durationSeconds)} s): ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, ${report.postgres.settings.server_version}.`,
    '',
    `Server settings: ${Object.entries(report.postgres.settings)
      .filter(([k]) => k !== 'version' && k !== 'server_version')
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}. ${report.postgres.note}`,
  );
  for (const result of report.cases) {
    out.push('', `### ${result.title}`, '');
    if (result.error) out.push(`**Failed:** ${result.error}`, '');
    for (const skip of result.skipped ?? []) out.push(`- ${skip.name}: ${skip.reason}`);
    if ((result.skipped ?? []).length > 0) out.push('');
    for (const table of result.tables ?? []) {
      const { head, rows } = rowsOf(table);
      out.push(`**${table.name}**`, '', markdownTable(head, rows), '');
      if (table.note) out.push(`Note: ${table.note}`, '');
    }
    for (const line of result.summaryLines ?? []) out.push(`- ${line}`);
    if ((result.summaryLines ?? []).length > 0) out.push('');
    for (const note of result.notes ?? []) out.push(`- ${note}`);
  }
  out.push('', '### Targets', '', markdownTable(['target', 'goal', 'value', 'result'], report.targets.map((t) => [t.name, t.goal, t.value, targetMark(t.met)]), { numeric: false }));
  return out.join('\n');
}
