import type { Log } from './logger.js';
import { stepLabel as label, type RunEvent } from '../events/run-events.js';

/**
 * Turns step events into log lines. Dump progress redraws one line on a
 * terminal after a few seconds; without a terminal each table gets a line.
 */
export function progressListener(logger: Log, tty: boolean): (event: RunEvent) => void {
  let progressShown = false;
  let stepStarted = 0;
  let lastTable: unknown;
  const clearProgress = (): void => {
    if (progressShown) process.stderr.write('\r\x1b[K');
    progressShown = false;
  };
  return (event) => {
    switch (event.type) {
      case 'run-start':
        logger.info({ runId: event.header.runId }, `run ${event.header.runId} (${event.header.command}) on ${event.header.database}`);
        break;
      case 'step-start':
        stepStarted = Date.now();
        logger.debug(`${label(event)} …`);
        break;
      case 'step-end': {
        clearProgress();
        const line = `${label(event)}: ${event.outcome} (${event.durationMs} ms)`;
        if (event.outcome === 'failed') logger.error(event.detail ?? {}, line);
        else if (event.step === 'fingerprint') logger.info(`${line}: ${String(event.detail?.tables ?? 0)} table(s)`);
        else logger.info(line);
        break;
      }
      case 'note':
        logger.info(event.detail ?? {}, `${label(event)}: ${event.message}`);
        break;
      case 'progress':
        if (tty) {
          if (Date.now() - stepStarted < 2000) break;
          process.stderr.write(`\r\x1b[K${label(event)}: ${event.message}`);
          progressShown = true;
        } else if (event.detail?.table !== lastTable) {
          lastTable = event.detail?.table;
          logger.info(`${label(event)}: ${event.message}`);
        }
        break;
      case 'run-end':
        clearProgress();
        logger.info(`run ended: ${event.outcome.status} (exit ${event.outcome.exitCode})`);
        break;
    }
  };
}
