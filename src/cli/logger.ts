import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import { showControls } from '../control-chars.js';
import { output } from './output.js';
import { scrub } from '../db/secret-forms.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

type LogMethod = (detailOrMessage: object | string, message?: string) => void;

/** The logging belay's CLI does. */
export interface Log {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

const require = createRequire(import.meta.url);

/**
 * Logs go to stderr: JSON lines when stderr is not a terminal, readable lines
 * when it is; through the guarded stderr (./output.ts), so that a log line that
 * cannot be written is dropped instead of throwing into the run.
 */
function pinoLogger(level: LogLevel, secrets: readonly string[]): Logger {
  const pino = require('pino') as typeof import('pino').pino;
  const options: LoggerOptions = {
    level,
    base: undefined,
    redact: { paths: ['password', '*.password', 'databaseUrl', '*.databaseUrl'], censor: '***' },
    hooks: {
      logMethod(args, method) {
        // its control characters escaped here: on a terminal the log line is written as it is, for its colours
        const scrubbed = args.map((arg) => (typeof arg === 'string' ? showControls(scrub(arg, secrets)) : scrub(arg, secrets)));
        return method.apply(this, scrubbed as Parameters<typeof method>);
      },
    },
  };
  if (process.stderr.isTTY) {
    const pretty = require('pino-pretty') as (opts: Record<string, unknown>) => DestinationStream;
    const destination = new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        output().stderr.raw(chunk.toString());
        done();
      },
    });
    return pino(options, pretty({ destination, ignore: 'runId', translateTime: 'HH:MM:ss' }));
  }
  const destination: DestinationStream = { write: (line) => output().stderr.write(line) };
  return pino(options, destination);
}

/**
 * pino is loaded with the first line logged, so that commands which only
 * print a result (status, plan, history) start without it.
 */
export function createLogger(level: LogLevel, secrets: readonly string[]): Log {
  if (level === 'silent') {
    const quiet: LogMethod = () => {};
    return { debug: quiet, info: quiet, warn: quiet, error: quiet };
  }
  let logger: Logger | undefined;
  const method =
    (name: keyof Log): LogMethod =>
    (detailOrMessage, message) => {
      logger ??= pinoLogger(level, secrets);
      if (typeof detailOrMessage === 'string') logger[name](detailOrMessage);
      else logger[name](detailOrMessage, message);
    };
  return { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') };
}
