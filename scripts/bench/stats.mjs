// Interleaved repetitions and their summary. Every sample keeps a global
// sequence number, so the JSON shows the order things ran in (A B C A B C …).

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function summarize(values) {
  return { n: values.length, median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** Least-squares line through (x, y): y ≈ intercept + slope·x, with r². */
export function fitLine(points) {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  const syy = points.reduce((s, p) => s + (p.y - my) ** 2, 0);
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy) };
}

/** The global order of every sample taken in this process. */
let sequence = 0;

/**
 * Run `warmup` untimed rounds, then `reps` timed rounds, each round running
 * every command once in the given order, until `signal` aborts. A command is
 *   { name, prepare?(round), run(round) → { ms, ...detail }, cleanup?(round) }
 * where prepare and cleanup are outside the timing. Returns the samples in
 * the order they ran and a summary per command.
 */
export async function interleaved({ commands, reps, warmup, signal, onSample }) {
  const samples = [];
  for (let round = 0; round < warmup + reps; round++) {
    for (const command of commands) {
      signal.throwIfAborted();
      await command.prepare?.(round);
      let result;
      try {
        result = await command.run(round);
      } finally {
        await command.cleanup?.(round);
      }
      const { ms, ...detail } = result;
      const sample = { seq: ++sequence, round, warmup: round < warmup, command: command.name, ms: Math.round(ms * 100) / 100 };
      if (Object.keys(detail).length > 0) sample.detail = detail;
      samples.push(sample);
      onSample(sample);
    }
  }
  const summary = {};
  for (const command of commands) {
    summary[command.name] = summarize(samples.filter((s) => !s.warmup && s.command === command.name).map((s) => s.ms));
  }
  return { samples, summary };
}

/** Each command's median over the baseline's median, from the same run. */
function ratiosTo(summary, baseline) {
  const base = summary[baseline]?.median;
  return Object.fromEntries(Object.entries(summary).map(([name, s]) => [name, base ? Math.round((s.median / base) * 1000) / 1000 : null]));
}

/**
 * One table of the report: the commands' summaries (median, min, max), their
 * ratio to the baseline and, given a number of items, the median per item;
 * with the samples of those commands.
 */
export function tableOf({ name, baseline, commands, measured, items, itemName = 'item', note }) {
  const summary = Object.fromEntries(commands.map((c) => [c.name, measured.summary[c.name]]));
  const ratios = ratiosTo(summary, baseline);
  const names = new Set(commands.map((c) => c.name));
  return {
    name,
    baseline,
    ...(items ? { items, itemName } : {}),
    ...(note ? { note } : {}),
    rows: commands.map((c) => ({
      command: c.name,
      does: c.does,
      ...summary[c.name],
      ratio: ratios[c.name],
      ...(items ? { perItem: Math.round((summary[c.name].median / items) * 1000) / 1000 } : {}),
    })),
    samples: measured.samples.filter((s) => names.has(s.command)),
  };
}

/** Medians of numeric fields of the timed samples' detail.<field> objects of one command (e.g. journal step totals). */
export function detailMedians(samples, command, field) {
  const timed = samples.filter((s) => !s.warmup && s.command === command && s.detail?.[field]);
  const keys = [...new Set(timed.flatMap((s) => Object.keys(s.detail[field])))];
  return Object.fromEntries(keys.map((key) => [key, median(timed.map((s) => s.detail[field][key] ?? 0))]));
}

/** The median of a numeric detail.<field> of one command's timed samples. */
export function detailMedian(samples, command, field) {
  return median(samples.filter((s) => !s.warmup && s.command === command && typeof s.detail?.[field] === 'number').map((s) => s.detail[field]));
}

/** A table of the parts of one command's time (e.g. a report's own timings), from the detail of its timed samples. */
export function partsTable({ name, measured, command, parts, note }) {
  const timed = measured.samples.filter((s) => !s.warmup && s.command === command);
  return {
    name,
    baseline: null,
    ...(note ? { note } : {}),
    rows: parts.map(([label, pick]) => ({ command: label, ...summarize(timed.map(pick)) })),
    samples: [],
  };
}
