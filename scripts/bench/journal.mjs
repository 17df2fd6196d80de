// Where a belay run spent its time, read from its journal file
// (backups/journal/<run>.jsonl): each step's duration, with steps that ran
// inside another (the health baseline inside preflight, …) marked as nested.
import { readFile } from 'node:fs/promises';

const keyOf = (record) => [record.step, record.subject, record.revision].filter(Boolean).join(' ');

/** A step's name for adding up: its revisions and snapshot ids dropped, a health check's phase kept. */
const labelOf = (record) => (record.step === 'health' && record.subject ? `health ${record.subject}` : record.step);

/** The steps in the order they started, as { label, key, ms, depth }; `lines` is the number of journal lines (one fdatasync each). */
export async function journalSteps(file) {
  const lines = (await readFile(file, 'utf8'))
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
  const steps = [];
  const open = [];
  for (const line of lines.filter((l) => l.type === 'step')) {
    if (line.event === 'start') {
      const entry = { label: labelOf(line), key: keyOf(line), ms: null, depth: open.length };
      steps.push(entry);
      open.push(entry);
    } else if (line.event === 'end') {
      const index = open.findLastIndex((entry) => entry.key === keyOf(line));
      if (index < 0) continue;
      open.splice(index, 1)[0].ms = line.durationMs ?? null;
    }
  }
  return { steps, lines: lines.length };
}

/** ms per step label, each level added up separately: nested steps are reported as "outer > inner". */
export function stepTotals(steps) {
  const totals = {};
  const path = [];
  for (const s of steps) {
    path.length = s.depth;
    path.push(s.label);
    if (s.ms === null) continue;
    const label = path.join(' > ');
    totals[label] = (totals[label] ?? 0) + s.ms;
  }
  return totals;
}
