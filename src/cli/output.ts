import { closeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { showControls } from '../control-chars.js';

/**
 * stdout and stderr, for output that may not be writable: a reader that went
 * away (`| head`: EPIPE), a full disk (ENOSPC), a terminal that closed (EIO).
 * Such a failure must never end or change a run: a write that fails is
 * dropped, and the stream is not written again. Node reports a failed write of
 * process.stdout/stderr as an 'error' event, which unhandled ends the process
 * with exit 1 in the middle of whatever it was doing; a write can also throw.
 */
export interface Output {
  /** Write, unless an earlier write failed; never throws. A control character in it is written as its escape (`\x1b`). */
  write(text: string): void;
  /** Write belay's own terminal output as it is (a live line redrawn, a log line's colours), never text a database or a file said. */
  raw(text: string): void;
  /** Write, and wait until the text is written (or its write failed): false when it could not be written. */
  flush(text: string): Promise<boolean>;
  /** The first write error, once one happened. */
  readonly failure: NodeJS.ErrnoException | undefined;
}

function guarded(stream: NodeJS.WriteStream): Output {
  let failure: NodeJS.ErrnoException | undefined;
  const failed = (error: unknown): void => {
    failure ??= error as NodeJS.ErrnoException;
  };
  // an error is also reported to the write's callback, and to later writes' callbacks
  stream.on('error', failed);
  const attempt = (text: string, done: (error: Error | null | undefined) => void): boolean => {
    if (failure !== undefined) return false;
    try {
      stream.write(text, done);
      return true;
    } catch (error) {
      failed(error);
      return false;
    }
  };
  return {
    // what a database or a file said is shown, never acted on: by a terminal, or by whatever reads a CI log or a file
    write: (text) => void attempt(showControls(text), (error) => error && failed(error)),
    raw: (text) => void attempt(text, (error) => error && failed(error)),
    flush: (text) =>
      new Promise<boolean>((resolve) => {
        const written = attempt(showControls(text), (error) => {
          if (error) failed(error);
          resolve(!error && failure === undefined);
        });
        if (!written) resolve(false);
      }),
    get failure() {
      return failure;
    },
  };
}

let streams: { stdout: Output; stderr: Output } | undefined;

/**
 * A terminal that hung up (an SSH session dropped) answers EIO to everything,
 * and Node, restoring a terminal's modes as it exits, aborts on that
 * (nodejs/node#51519): the exit code would be lost to a SIGABRT. Such a
 * descriptor is closed as belay exits, which Node then skips.
 */
function releaseHungUpTerminals(): void {
  const terminals = [0, 1, 2].filter((fd) => isatty(fd));
  process.on('exit', () => {
    for (const fd of terminals) if (!isatty(fd)) closeSync(fd);
  });
}

/** Guard process.stdout and process.stderr (once, before anything is written): every write of the CLI goes through these. */
export function output(): { stdout: Output; stderr: Output } {
  if (!streams) releaseHungUpTerminals();
  streams ??= { stdout: guarded(process.stdout), stderr: guarded(process.stderr) };
  return streams;
}
