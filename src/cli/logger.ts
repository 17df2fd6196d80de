import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import { scrub } from './scrub.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** Logs go to stderr: JSON lines when stderr is not a terminal, readable lines when it is. */
export function createLogger(level: LogLevel, secrets: readonly string[]): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: undefined,
    redact: { paths: ['password', '*.password', 'databaseUrl', '*.databaseUrl'], censor: '***' },
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((arg) => scrub(arg, secrets));
        return method.apply(this, scrubbed as Parameters<typeof method>);
      },
    },
  };
  if (process.stderr.isTTY) {
    const require = createRequire(import.meta.url);
    const pretty = require('pino-pretty') as (opts: Record<string, unknown>) => pino.DestinationStream;
    return pino(options, pretty({ destination: 2, sync: true, ignore: 'runId', translateTime: 'HH:MM:ss' }));
  }
  return pino(options, pino.destination({ dest: 2, sync: true }));
}
