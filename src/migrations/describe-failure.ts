import { describeBlocker } from '../db/lock-watchdog.js';
import type { RevisionFailure } from './revision-error.js';

// Told without loading pg: the CLI's output layer tells failures too (src/cli/envelope.ts).

/** SQLSTATE lock_not_available: lock_timeout, or NOWAIT. */
const LOCK_NOT_AVAILABLE = '55P03';

export function describeFailure(f: RevisionFailure): string {
  const where = f.line === undefined ? f.file : `${f.file}:${f.line}`;
  const code = f.sqlstate ? ` [SQLSTATE ${f.sqlstate}]` : '';
  const lines = [`${f.revision} ${f.direction} failed at ${where}: ${f.message}${code}`];
  if (f.detail) lines.push(`  DETAIL: ${f.detail}`);
  if (f.hint) lines.push(`  HINT: ${f.hint}`);
  for (const b of f.blockers ?? []) lines.push(`  lock held by: ${describeBlocker(b)}`);
  if (f.sqlstate === LOCK_NOT_AVAILABLE && !f.blockers?.length) lines.push('  lock held by: a session not seen in time (look at pg_locks and pg_stat_activity)');
  if (f.statement) lines.push(`  statement: ${truncate(f.statement, 300)}`);
  return lines.join('\n');
}

function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

