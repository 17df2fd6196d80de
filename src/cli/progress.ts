import { stepLabel, type RunEvent, type StepRef } from '../events/run-events.js';

/** Steps that run longer than this show a ticking elapsed time on a terminal. */
const TICK_AFTER_MS = 2000;
const TICK_EVERY_MS = 500;

export interface ProgressOptions {
  write: (text: string) => void;
  /** Clear the terminal's line, for the live line to be redrawn. */
  clearLine: () => void;
  /** A terminal: one live line, redrawn; else plain lines, no control characters. */
  tty: boolean;
  /** warn/error: failures only; silent: nothing. */
  level: 'all' | 'failures' | 'none';
}

interface ActiveStep {
  key: string;
  line: string;
  started: number;
  /** The latest progress event's text: tables and bytes done. */
  detail: string | undefined;
}

/** `+` a revision going up, `-` one coming down (as Sqitch prints them), `·` any other step. */
function lineFor(ref: StepRef): string {
  if (ref.step === 'apply' && ref.revision) return `+ ${ref.revision}`;
  if (ref.step === 'down' && ref.revision) return `- ${ref.revision}`;
  return `· ${stepLabel(ref)}`;
}

const keyOf = (ref: StepRef): string => `${ref.step}\u0000${ref.revision ?? ''}\u0000${ref.subject ?? ''}`;

function took(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The error of a failed step, with PostgreSQL's DETAIL and HINT when it carried them. */
function failureLines(detail: Record<string, unknown> | undefined): string[] {
  if (!detail) return [];
  const failure = (detail.failure ?? {}) as Record<string, unknown>;
  const lines: string[] = [];
  const message = typeof detail.error === 'string' ? detail.error : undefined;
  if (message) lines.push(...message.split('\n').map((line, i) => (i === 0 ? `  error: ${line}` : `  ${line}`)));
  for (const [key, label] of [['detail', 'DETAIL'], ['hint', 'HINT']] as const) {
    const value = failure[key] ?? detail[key];
    // the error's own text may carry them already (PostgreSQL errors do)
    if (typeof value === 'string' && value && !message?.includes(value)) lines.push(`  ${label}: ${value}`);
  }
  return lines;
}

export interface ProgressPrinter {
  listener: (event: RunEvent) => void;
  close: () => void;
  /** Whether this error text was already printed under a failed step. */
  printed: (error: string) => boolean;
  /** What a signal makes the command do, as a line like the others (not a log record), naming the step it came during. */
  signalled: (text: string) => void;
}

/**
 * Step events as Sqitch-style lines on stderr: each revision and step as it
 * starts and ends (`+ 0023_slug .. ok (120 ms)`). On a terminal the running
 * step is one live line that ticks its elapsed time after 2 s, with the tables
 * and bytes done when the step reports them; off a terminal each start and end
 * is a plain line. A failure's error is printed once, however many steps end
 * with it.
 */
export function progressPrinter(options: ProgressOptions): ProgressPrinter {
  const now = (): number => performance.now();
  const active = new Map<string, ActiveStep>();
  const printedErrors = new Set<string>();
  let live: ActiveStep | undefined;
  let liveShown = false;
  let timer: NodeJS.Timeout | undefined;
  let lastProgressTable: string | undefined;

  const all = options.level === 'all';
  const clearLive = (): void => {
    if (liveShown) options.clearLine();
    liveShown = false;
  };
  const drawLive = (): void => {
    if (!options.tty || !live) return;
    const elapsed = now() - live.started;
    const ticking = elapsed >= TICK_AFTER_MS ? ` ${took(Math.round(elapsed))}${live.detail ? ` (${live.detail})` : ''}` : '';
    options.clearLine();
    options.write(`${live.line} ..${ticking}`);
    liveShown = true;
  };
  /** Print a whole line above the live one. */
  const println = (line: string): void => {
    clearLive();
    options.write(`${line}\n`);
    drawLive();
  };
  const newestActive = (): ActiveStep | undefined => [...active.values()].at(-1);
  const startTicking = (): void => {
    if (timer || !options.tty) return;
    timer = setInterval(() => {
      if (live && now() - live.started >= TICK_AFTER_MS) drawLive();
    }, TICK_EVERY_MS);
    timer.unref();
  };
  const stopTicking = (): void => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };

  const begin = (key: string, line: string): void => {
    const step: ActiveStep = { key, line, started: now(), detail: undefined };
    active.set(key, step);
    if (!all) return;
    if (options.tty) {
      if (live && liveShown) options.write('\n');
      liveShown = false;
      live = step;
      drawLive();
      startTicking();
    } else {
      options.write(`${line} ..\n`);
    }
  };
  const finish = (key: string, line: string, result: string, failed: boolean, detail: Record<string, unknown> | undefined): void => {
    active.delete(key);
    const errorText = typeof detail?.error === 'string' ? detail.error : undefined;
    const firstTime = errorText === undefined || !printedErrors.has(errorText);
    if (errorText) printedErrors.add(errorText);
    const extra = failed && firstTime ? failureLines(detail) : [];
    if (options.level === 'none' || (!all && !failed)) return;
    if (live?.key === key) {
      // the live line becomes this end line; a step still running (the backup beside a fingerprint) takes its place
      clearLive();
      live = newestActive();
    }
    println([`${line} .. ${result}`, ...extra].join('\n'));
    if (active.size === 0) stopTicking();
  };

  const listener = (event: RunEvent): void => {
    switch (event.type) {
      case 'run-start':
        if (all) println(`  run ${event.header.runId}`);
        break;
      case 'step-start':
        begin(keyOf(event), lineFor(event));
        break;
      case 'step-end': {
        const detail = event.detail as Record<string, unknown> | undefined;
        const tables = event.step === 'fingerprint' && typeof detail?.tables === 'number' ? `, ${detail.tables} table(s)` : '';
        finish(keyOf(event), lineFor(event), `${event.outcome} (${took(event.durationMs)})${tables}`, event.outcome === 'failed', detail);
        break;
      }
      case 'note': {
        if (!all) break;
        let message = event.message;
        for (const error of printedErrors) message = message.replace(error, '(the failure above)');
        println(`  ${stepLabel(event)}: ${message}`);
        break;
      }
      case 'progress': {
        const step = active.get(keyOf(event));
        if (step) step.detail = event.message;
        if (!all) break;
        if (options.tty) {
          if (step && step === live && now() - step.started >= TICK_AFTER_MS) drawLive();
        } else {
          const table = typeof event.detail?.table === 'string' ? event.detail.table : event.message;
          if (table !== lastProgressTable) println(`  ${stepLabel(event)}: ${event.message}`);
          lastProgressTable = table;
        }
        break;
      }
      case 'run-end':
        clearLive();
        live = undefined;
        stopTicking();
        break;
    }
  };
  return {
    listener,
    close: () => {
      stopTicking();
      clearLive();
    },
    printed: (error) => options.level !== 'none' && printedErrors.has(error),
    signalled: (text) => {
      if (options.level === 'none') return;
      const running = newestActive();
      println(`  ${text}${running ? ` (during ${running.line})` : ''}`);
    },
  };
}
