import { compareFingerprints } from '../integrity/compare.js';
import type { Fingerprint } from '../integrity/fingerprint.js';
import { describeColumnOrder, describeSchemaDiff, diffSchemas, schemasDiffer, type SchemaDescription } from '../integrity/schema-digest.js';

/** The state right before an up, or right after its down. */
export interface StateSeen {
  schema: SchemaDescription;
  data: Fingerprint;
}

export interface DownVerdict {
  failures: string[];
  warnings: string[];
  /** Object by object, when the schema differs. */
  diff?: string;
}

/**
 * Did the down give back the state from right before its up? Schema object
 * by object (column order alone is a warning: PostgreSQL cannot put a
 * re-added column back in its place), and data table by table.
 */
export function judgeDown(before: StateSeen, after: StateSeen): DownVerdict {
  const verdict: DownVerdict = { failures: [], warnings: [] };
  const schema = diffSchemas(before.schema, after.schema);
  verdict.warnings.push(...describeColumnOrder(schema));
  if (schemasDiffer(schema)) {
    const counts = [
      schema.added.length > 0 ? `${schema.added.length} object(s) left behind` : '',
      schema.removed.length > 0 ? `${schema.removed.length} missing` : '',
      schema.changed.length > 0 ? `${schema.changed.length} changed` : '',
    ].filter(Boolean);
    verdict.failures.push(`the down does not give back the schema from before the up (${counts.join(', ')})`);
    verdict.diff = describeSchemaDiff(schema, after.schema, before.schema);
  }
  const changed = compareFingerprints(before.data, after.data, 'same-schema');
  if (changed.length > 0) verdict.failures.push(`the round trip changed data: ${changed.map((d) => d.message).join('; ')}`);
  return verdict;
}
