import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { usageError, type BelayError } from '../../errors.js';
import { writeProblem } from '../../unreadable.js';
import { discoverRevisions } from '../../migrations/discover.js';
import { makeDir } from '../../make-dir.js';

export interface NewRevisionResult {
  name: string;
  files: string[];
}

const SQL_UP = (name: string): string => `-- ${name}: up\n-- Add -- belay:no-transaction as the FIRST line for CREATE INDEX CONCURRENTLY and the like.\n\n`;
const SQL_DOWN = (name: string): string => `-- ${name}: down — undo exactly what the up did.\n\n`;
const MODULE = (name: string): string => `// ${name}
interface Ctx {
  sql(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

export async function up(ctx: Ctx): Promise<void> {
  await ctx.sql('SELECT 1');
}

export async function down(ctx: Ctx): Promise<void> {
  await ctx.sql('SELECT 1');
}
`;

function cannotWrite(dir: string, error: unknown): BelayError {
  return usageError(`cannot create the revision in ${dir}: ${writeProblem(error)}; nothing was created`, {
    hint: `Make ${dir} a folder the user running belay can write, or point --migrations at one.`,
    cause: error,
  });
}

/** Scaffold the next numbered revision, keeping the folder's number width (4 by default). */
export async function newRevision(migrationsDir: string, slug: string, kind: 'sql' | 'ts'): Promise<NewRevisionResult> {
  const clean = slug.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  if (!clean) throw usageError(`"${slug}" makes no revision name`, { hint: 'Use letters and digits, e.g. `belay new add_user_email`.' });
  await makeDir(migrationsDir).catch((error: unknown) => {
    throw cannotWrite(migrationsDir, error);
  });
  const revisions = await discoverRevisions(migrationsDir);
  const last = revisions[revisions.length - 1];
  const width = last ? last.number.length : 4;
  const next = String((last ? Number(last.number) : 0) + 1).padStart(width, '0');
  const name = `${next}_${clean}`;
  const files =
    kind === 'ts'
      ? [[join(migrationsDir, `${name}.ts`), MODULE(name)]]
      : [
          [join(migrationsDir, `${name}.up.sql`), SQL_UP(name)],
          [join(migrationsDir, `${name}.down.sql`), SQL_DOWN(name)],
        ];
  const written: string[] = [];
  try {
    for (const [file, text] of files) {
      await writeFile(file!, text!, { flag: 'wx' });
      written.push(file!);
    }
  } catch (error) {
    // no half revision (an up without its down) is left behind
    for (const file of written) await rm(file, { force: true }).catch(() => {});
    throw cannotWrite(migrationsDir, error);
  }
  return { name, files: written };
}
