// Where a belay run spent its time, read from its journal file
// (backups/journal/<run>.jsonl): each step's duration, with steps that ran
// inside another (the health baseline inside preflight, …) marked as nested.
// Steps may also run side by side (the fingerprint beside the dump): neither
// is nested then, and the time outside any step is the total minus the time
// covered by at least one step.
import { readFile } from 'node:fs/promises';

const keyOf = (record) => [record.step, record.subject, record.revision].filter(Boolean).join(' ');

/** A step's name for adding up: its revisions and snapshot ids dropped, a health check's phase kept. */
const labelOf = (record) => (record.step === 'health' && record.subject ? `health ${record.subject}` : record.step);

/**
 * The steps in the order they started, as { label, key, ms, start, end, parents };
 * `coveredMs` is the time at least one step was running; `lines` the number of
 * journal lines.
 */
export async function journalSteps(file) {
  const lines = (await readFile(file, 'utf8'))
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
  const steps = [];
  const open = [];
  for (const line of lines.filter((l) => l.type === 'step')) {
    if (line.event === 'start') {
      const entry = { label: labelOf(line), key: keyOf(line), ms: null, start: Date.parse(line.at), end: null };
      steps.push(entry);
      open.push(entry);
    } else if (line.event === 'end') {
      const index = open.findLastIndex((entry) => entry.key === keyOf(line));
      if (index < 0) continue;
      const entry = open.splice(index, 1)[0];
      entry.ms = line.durationMs ?? null;
      entry.end = Date.parse(line.at);
    }
  }
  const ended = steps.filter((s) => s.end !== null);
  for (const s of steps) {
    // the steps that started no later and ended no earlier: the ones it ran inside
    s.parents = s.end === null ? [] : ended.filter((o) => o !== s && o.start <= s.start && o.end >= s.end && !(o.start === s.start && o.end === s.end && steps.indexOf(o) > steps.indexOf(s)));
  }
  return { steps, lines: lines.length, coveredMs: coveredMs(ended) };
}

function coveredMs(steps) {
  const spans = steps.map((s) => [s.start, s.end]).sort((a, b) => a[0] - b[0]);
  let total = 0;
  let current = null;
  for (const [start, end] of spans) {
    if (current && start <= current[1]) current[1] = Math.max(current[1], end);
    else {
      if (current) total += current[1] - current[0];
      current = [start, end];
    }
  }
  if (current) total += current[1] - current[0];
  return total;
}

/** ms per step label, each level added up separately: nested steps are reported as "outer > inner". */
export function stepTotals(steps) {
  const totals = {};
  for (const s of steps) {
    if (s.ms === null) continue;
    const label = [...s.parents.sort((a, b) => a.start - b.start || b.end - a.end).map((p) => p.label), s.label].join(' > ');
    totals[label] = (totals[label] ?? 0) + s.ms;
  }
  return totals;
}
