import { createInterface } from 'node:readline/promises';

/** Ask on a terminal; never on a pipe (the run goes on), never with --yes. */
export function confirmer(yes: boolean): ((summary: string) => Promise<boolean>) | undefined {
  if (yes || !process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return async (summary) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await rl.question(`belay will ${summary}.\nProceed? [y/N] `);
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  };
}
