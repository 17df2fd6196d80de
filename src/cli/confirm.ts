import { createInterface } from 'node:readline/promises';

/** The question a run is asking, if any: a signal then answers it. */
export interface Question {
  open: boolean;
}

/**
 * Ask on a terminal; never on a pipe (the run goes on), never with --yes.
 * A SIGINT/SIGTERM (`signal` aborted) while it asks answers no: nothing has
 * been done yet, so the run ends as declined, at once.
 */
export function confirmer(yes: boolean, signal: AbortSignal, question: Question): ((summary: string) => Promise<boolean>) | undefined {
  if (yes || !process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return async (summary) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    // a terminal that hung up fails readline's mode changes with EIO: the SIGHUP that came with it answers the question
    rl.on('error', () => {});
    question.open = true;
    try {
      const answer = await rl.question(`belay will ${summary}.\nProceed? [y/N] `, { signal });
      return /^y(es)?$/i.test(answer.trim());
    } catch (error) {
      if (signal.aborted) return false;
      throw error;
    } finally {
      question.open = false;
      rl.close();
    }
  };
}
