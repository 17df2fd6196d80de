import type { ClientBase } from 'pg';
import { derivedName } from '../db/databases.js';
import { markDatabase, type MarkedKind } from '../db/marked-databases.js';
import type { JournalLine } from '../journal/file-journal.js';

/** The throwaway schema-only copies learning the backup scope makes (`<db>_belay_scope_<8 hex>`, learn-scope.ts). */
export const SCOPE_COPIES: MarkedKind = {
  markerPrefix: 'belay scope copy ',
  namePrefix: (database) => scopeCopyName(database, '0'.repeat(8)).slice(0, -8),
  nameRest: '^[0-9a-f]{8}$',
};

export const scopeCopyName = (database: string, hex: string): string => derivedName(database, `belay_scope_${hex}`);

/** Mark a copy just created as belay's; the marker names the session on the target that learns on it. */
export const markScopeCopy = (admin: ClientBase, copy: string, of: string): Promise<void> => markDatabase(admin, SCOPE_COPIES, copy, of);

/** Under this key of a journal note's detail, a run names its copy before making it (see LearnScopeOptions.beforeCopy). */
export const SCOPE_COPY_NOTE = 'scopeCopy';

/** The copies killed runs named in their journals (unfinishedJournals) before making them: belay's, marked or not. */
export function scopeCopiesNamedIn(journals: ReadonlyArray<{ lines: readonly JournalLine[] }>): Set<string> {
  const names = new Set<string>();
  for (const { lines } of journals) {
    for (const line of lines) {
      const copy = line.type === 'step' ? line.detail?.[SCOPE_COPY_NOTE] : undefined;
      if (typeof copy === 'string') names.add(copy);
    }
  }
  return names;
}
