import { z } from 'zod';
import { maskCredentials } from '../db/secret-forms.js';
import { splitSql } from '../migrations/split-sql.js';
import { HOOK_NAMES } from './defaults.js';

/**
 * The one definition of `belay.config.*`: validation, defaults, the TypeScript
 * types (types.ts infers them) and the published JSON Schema
 * (belay.schema.json, written by scripts/config-schema.mjs) all come from here.
 * Each message is what was expected, so a report reads "KEY must be MESSAGE".
 */

const text = (what = 'a non-empty string') => z.string({ error: what }).min(1, { error: what });

function numberFrom(min: number, max: number, whole = false) {
  const expected = `a ${whole ? 'whole ' : ''}number from ${min} to ${max}`;
  const base = z.number({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
  return whole ? base.int({ error: expected }) : base;
}

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `one of ${values.map((v) => `"${v}"`).join(', ')}` });

/** An object of these keys, reported as "an object { run, timeoutSeconds }" when the value is not one. */
const object = <T extends z.core.$ZodLooseShape>(shape: T) => z.strictObject(shape, { error: `an object { ${Object.keys(shape).join(', ')} }` });

const seconds = (min: number, max: number, fallback: number, description: string) =>
  numberFrom(min, max).default(fallback).describe(description);

/** A check's query is one statement, as psql would split it (the server refuses several too); the problem names the check. */
function oneStatement(check: { name: string; query: string }, ctx: z.RefinementCtx): void {
  const count = splitSql(check.query).statements.length;
  if (count !== 1) ctx.addIssue({ code: 'custom', path: ['query'], input: check.query, message: `one statement: "${check.name}" holds ${count}` });
}

const sqlCheck = object({
  name: text(),
  query: text().describe('A read-only query, run after the change (and as the baseline before it), in a READ ONLY transaction.'),
  expect: z
    .union([z.literal('no-rows'), z.literal('some-rows'), z.strictObject({ equals: z.unknown() })], {
      error: '"no-rows", "some-rows" or { equals: VALUE }',
    })
    .describe('"no-rows", "some-rows", or { equals: VALUE } for the first column of the first row.'),
}).superRefine(oneStatement);

const httpCheck = object({
  name: text(),
  url: text().regex(/^https?:\/\//, { error: 'an http:// or https:// URL' }),
  method: oneOf(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']).default('GET'),
  headers: z.record(z.string(), text(), { error: 'an object of header names and values' }).default({}),
  body: z.unknown().optional().describe('A string, or any JSON value (sent as JSON, with content-type application/json unless headers set one).'),
  expectStatus: numberFrom(100, 599, true).default(200),
  timeoutSeconds: seconds(0.1, 3600, 5, 'Per request.'),
});

const commandCheck = object({
  name: text(),
  run: text().describe('A shell command; exit 0 is healthy. Gets no password in its environment.'),
  timeoutSeconds: seconds(0.1, 86_400, 30, 'Per attempt.'),
});

const hook = object({
  run: text().describe('A shell command; env BELAY_RUN_ID, BELAY_DATABASE, BELAY_FROM, BELAY_TO, BELAY_STEP, BELAY_OUTCOME.'),
  timeoutSeconds: seconds(0.1, 86_400, 60, 'A hook that runs longer is a failed step.'),
}).optional();

export const configSchema = z
  .strictObject(
    {
      $schema: z.string({ error: 'a string' }).optional().describe('Path or URL of this schema, for editors.'),
      databaseUrl: text()
        .optional()
        .describe('Lower priority than --database-url and DATABASE_URL; prefer DATABASE_URL or a passfile to a password here.'),
      migrations: text().default('migrations').describe('Revisions folder, relative to the project.'),
      backups: text().default('backups').describe('Snapshots and journal folder, relative to the project.'),
      database: object({
        statementTimeoutSeconds: seconds(0, 86_400, 0, "Per statement of belay's own queries and the revisions; 0 disables."),
        lockTimeoutSeconds: seconds(0, 86_400, 10, 'How long any statement may wait for a lock.'),
        connectTimeoutSeconds: seconds(1, 3600, 10, 'How long a connection may take.'),
      }).default({ statementTimeoutSeconds: 0, lockTimeoutSeconds: 10, connectTimeoutSeconds: 10 }),
      health: object({
        sql: z.array(sqlCheck, { error: 'a list' }).default([]),
        http: z.array(httpCheck, { error: 'a list' }).default([]),
        command: z.array(commandCheck, { error: 'a list' }).default([]),
        timeoutSeconds: seconds(0, 86_400, 30, 'How long checks may retry after the change (--health-timeout).'),
        intervalSeconds: seconds(0.1, 3600, 2, 'Between attempts.'),
      }).default({ sql: [], http: [], command: [], timeoutSeconds: 30, intervalSeconds: 2 }),
      integrity: object({
        mode: oneOf(['strict', 'invariants', 'off'])
          .default('strict')
          .describe('strict: fingerprint every protected table; invariants: your queries and the structural checks; off: nothing.'),
        tables: object({
          include: z.array(text(), { error: 'a list' }).default(['*.*']).describe('schema.table globs; a bare name means public.name.'),
          exclude: z.array(text(), { error: 'a list' }).default([]),
        }).default({ include: ['*.*'], exclude: [] }),
        invariants: z
          .array(object({ name: text(), query: text().describe('Rows it returns are violations.') }), { error: 'a list' })
          .default([]),
      }).default({ mode: 'strict', tables: { include: ['*.*'], exclude: [] }, invariants: [] }),
      backup: object({
        format: oneOf(['custom', 'directory']).default('custom'),
        jobs: numberFrom(1, 64, true).default(1).describe('pg_dump --jobs (directory format).'),
        compress: numberFrom(0, 9, true).optional(),
        keep: numberFrom(1, 100_000, true).optional().describe('How many snapshots `backups prune` keeps by default.'),
        scope: oneOf(['full', 'touched', 'auto'])
          .default('auto')
          .describe(
            'Which snapshot --with-backup takes (--backup-scope overrides): full, every table; touched, the schema plus the rows of the tables the pending revisions may change, learned on a schema-only copy and enforced before each commit; auto, touched when every revision runs in a transaction and its scope was learned, else full (docs/snapshots.md).',
          ),
      }).default({ format: 'custom', jobs: 1, scope: 'auto' }),
      hooks: object(Object.fromEntries(HOOK_NAMES.map((name) => [name, hook])) as Record<(typeof HOOK_NAMES)[number], typeof hook>).default({}),
    },
    { error: 'an object' },
  )
  .describe('belay.config.json: health checks, integrity, backups and hooks for belay (npm package pg-belay).');

/** What a config file may contain (defaults optional). */
export type ConfigInput = z.input<typeof configSchema>;
/** The same with every default filled in. */
export type ConfigFile = z.output<typeof configSchema>;

function keyPath(path: readonly PropertyKey[]): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`)).join('');
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = outline(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/** A value as JSON, but an object as its keys alone (any of its values may be a secret), and URL passwords masked before any cut. */
function outline(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(outline).join(',')}]`;
  if (value !== null && typeof value === 'object') return `{${Object.keys(value).join(', ')}}`;
  // JSON has no word for these: stringify writes null
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return maskCredentials(JSON.stringify(value) ?? typeof value);
}

/** Every problem in the file, one line each: "KEY must be EXPECTED (got VALUE)" or "unknown key KEY". */
export function validateConfig(raw: unknown): { ok: true; config: ConfigFile } | { ok: false; problems: string[] } {
  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (parsed.success) return { ok: true, config: parsed.data };
  const problems = parsed.error.issues.flatMap((issue) => {
    const at = keyPath(issue.path);
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `unknown key ${at ? `${at}.` : ''}${key}`);
    return [`${at || 'the config'} must be ${issue.message} (got ${shown(issue.input)})`];
  });
  return { ok: false, problems };
}
