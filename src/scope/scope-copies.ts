import type { ClientBase } from 'pg';
import { derivedName } from '../db/databases.js';
import { markDatabase, type MarkedKind } from '../db/marked-databases.js';

/** The throwaway schema-only copies learning the backup scope makes (`<db>_belay_scope_<8 hex>`, learn-scope.ts). */
export const SCOPE_COPIES: MarkedKind = {
  markerPrefix: 'belay scope copy ',
  namePrefix: (database) => scopeCopyName(database, '0'.repeat(8)).slice(0, -8),
  nameRest: '^[0-9a-f]{8}$',
};

export const scopeCopyName = (database: string, hex: string): string => derivedName(database, `belay_scope_${hex}`);

/** Mark a copy just created as belay's; the marker names the session on the target that learns on it. */
export const markScopeCopy = (admin: ClientBase, copy: string, of: string): Promise<void> => markDatabase(admin, SCOPE_COPIES, copy, of);
