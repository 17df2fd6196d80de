import type { ClientBase } from 'pg';
import { quoteQualified } from '../db/ident.js';
import { objectLabel, setOffReason, type CatalogObject, type LearnedScope, type RevisionScope } from './scope.js';

export interface ScopeSizes {
  /** On-disk size (pg_total_relation_size: heap, indexes, TOAST) of each touched relation, by "schema.name". */
  relations: Map<string, number>;
  databaseBytes: number;
}

/** Sizes, measured on the target, of the relations the scope touches and of the whole database. */
export async function measureScope(client: ClientBase, scope: LearnedScope): Promise<ScopeSizes> {
  const touched = new Map(scope.revisions.flatMap((r) => r.touches.map((t) => [objectLabel(t), quoteQualified(t.schema, t.name)] as const)));
  const { rows } = await client.query<{ label: string; bytes: string | null }>(
    'SELECT u.label, pg_total_relation_size(to_regclass(u.name))::text AS bytes FROM unnest($1::text[], $2::text[]) AS u(label, name)',
    [[...touched.keys()], [...touched.values()]],
  );
  const { rows: total } = await client.query<{ bytes: string }>('SELECT pg_database_size(current_database())::text AS bytes');
  return { relations: new Map(rows.map((row) => [row.label, Number(row.bytes ?? 0)])), databaseBytes: Number(total[0]?.bytes ?? 0) };
}

/** Decimal units, as disk sizes are sold and as the plan reads: "120 MB of 412 GB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** Tables first, by bare name; a sequence a column owns goes unsaid (it comes with its table). */
const list = (objects: CatalogObject[]): string =>
  objects
    .filter((o) => !o.owned)
    .sort((a, b) => Number(a.kind !== 'table') - Number(b.kind !== 'table') || objectLabel(a).localeCompare(objectLabel(b)))
    .map((o) => (o.kind === 'table' ? objectLabel(o) : `${o.kind} ${objectLabel(o)}`))
    .join(', ');

/**
 * One revision's learned scope, for `plan`:
 * "0023 touches account.users (120 MB), creates account.user_devices; snapshot: 1 table, 120 MB of 412 GB".
 * Only what a revision may write counts as touched; what it only reads or
 * indexes is said as "reads" (its definition is in every snapshot).
 */
export function formatRevisionScope(scope: RevisionScope, sizes: ScopeSizes): string {
  const number = `${/^\d+/.exec(scope.revision)?.[0] ?? scope.revision}${scope.direction === 'down' ? ' down' : ''}`;
  if (!scope.transactional) return `${number} runs outside a transaction: what it touches is unknown; snapshot: full, ${formatSize(sizes.databaseBytes)}`;
  const writes = scope.touches.filter((t) => t.need === 'data');
  const reads = scope.touches.filter((t) => t.need === 'definition');
  const parts: string[] = [];
  if (writes.length > 0) parts.push(`touches ${writes.map((t) => `${objectLabel(t)} (${formatSize(sizes.relations.get(objectLabel(t)) ?? 0)})`).join(', ')}`);
  if (reads.length > 0) parts.push(`reads ${reads.map(objectLabel).join(', ')}`);
  const altered = scope.alters.filter((o) => !writes.some((t) => objectLabel(t) === objectLabel(o)));
  if (scope.creates.length > 0) parts.push(`creates ${list(scope.creates)}`);
  if (altered.length > 0) parts.push(`alters ${list(altered)}`);
  if (scope.drops.length > 0) parts.push(`drops ${list(scope.drops)}`);
  const tables = writes.filter((t) => t.kind !== 'sequence');
  const bytes = writes.reduce((sum, t) => sum + (sizes.relations.get(objectLabel(t)) ?? 0), 0);
  const what = parts.length > 0 ? parts.join(', ') : 'touches no table';
  return `${number} ${what}; snapshot: ${tables.length} ${tables.length === 1 ? 'table' : 'tables'}, ${formatSize(bytes)} of ${formatSize(sizes.databaseBytes)}`;
}

/** The whole run's snapshot, after the per-revision lines. */
export function formatScopeTotal(scope: LearnedScope, sizes: ScopeSizes): string {
  if (scope.unknown !== null) return `snapshot: full, ${formatSize(sizes.databaseBytes)} (scope unknown: ${scope.unknown})`;
  if (scope.setOff.length > 0) return `snapshot: full, ${formatSize(sizes.databaseBytes)} (${setOffReason(scope.setOff)})`;
  const tables = scope.dataTables.filter((t) => t.kind !== 'sequence');
  const bytes = scope.dataTables.reduce((sum, t) => sum + (sizes.relations.get(objectLabel(t)) ?? 0), 0);
  return `snapshot: touched, ${tables.length} ${tables.length === 1 ? 'table' : 'tables'}, ${formatSize(bytes)} of ${formatSize(sizes.databaseBytes)}`;
}
