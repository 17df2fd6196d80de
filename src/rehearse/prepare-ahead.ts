import { isReversible, prepareStep, prepareVerify } from '../migrations/run-revision.js';
import type { Revision } from '../migrations/revision.js';

/**
 * Read and parse the revisions' files, and import their modules (TypeScript
 * compiled on the way), while the throwaway starts: the steps keep what they
 * load, so the cycle finds it ready instead of paying for it between its
 * checks. Nothing is judged here: a revision that cannot be loaded fails the
 * same way, with the same error, when its step runs.
 */
export async function prepareAhead(built: readonly Revision[], pending: readonly Revision[]): Promise<void> {
  const quietly = (work: () => Promise<unknown>): Promise<unknown> => work().catch(() => undefined);
  for (const revision of [...built, ...pending]) {
    await quietly(() => prepareStep(revision, 'up'));
    await quietly(() => prepareVerify(revision));
  }
  for (const revision of pending) {
    if (await isReversible(revision).catch(() => false)) await quietly(() => prepareStep(revision, 'down'));
  }
}
