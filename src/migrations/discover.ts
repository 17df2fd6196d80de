import { readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { readProblem } from '../unreadable.js';
import { usageError } from '../errors.js';
import { checksumFiles } from './checksum.js';
import { REVISION_NAME, type Revision, type RevisionFiles } from './revision.js';

const SQL_FILE = /^(.+)\.(up|down|verify)\.sql$/;
const MODULE_FILE = /^(.+)\.(ts|mts|js|mjs)$/;
/** A numbered SQL or script file that is not a revision is a naming mistake, not something to skip silently. */
// any case: 0001_a.UP.SQL is refused by name rather than skipped without a word
const LOOKS_LIKE_A_REVISION = /^\d+.*\.(sql|ts|mts|js|mjs)$/i;

/** Revisions read and hashed between two turns of the event loop. */
const YIELD_EVERY = 16;

interface Parts {
  up?: string;
  down?: string;
  verify?: string;
  module?: string;
}

/** Every revision in `dir`, in order. Files that are not revisions are ignored. */
export async function discoverRevisions(dir: string): Promise<Revision[]> {
  const root = resolve(dir);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (error) {
    const problem = readProblem(error, `the migrations folder ${root}`, { folder: true });
    throw usageError(`cannot read the migrations folder ${root}: ${problem ? `${problem.code}: ${problem.reason}` : String(error)}`, {
      hint: problem?.code === 'ENOENT' || problem === undefined ? 'Create it with `belay new NAME`, or point --migrations at your folder.' : problem.hint,
    });
  }
  const byName = new Map<string, Parts>();
  const misnamed: string[] = [];
  for (const file of names) {
    if (file.endsWith('.d.ts')) continue;
    const sql = SQL_FILE.exec(file);
    const mod = sql ? null : MODULE_FILE.exec(file);
    const name = sql?.[1] ?? mod?.[1];
    if (!name || !REVISION_NAME.test(name)) {
      if (LOOKS_LIKE_A_REVISION.test(file)) misnamed.push(file);
      continue;
    }
    const parts = byName.get(name) ?? {};
    if (sql) parts[sql[2] as 'up' | 'down' | 'verify'] = join(root, file);
    else if (parts.module) throw usageError(`revision ${name} has two modules: ${parts.module} and ${join(root, file)}`, { hint: 'Keep one of them: a revision is one module, or its .sql files.' });
    else parts.module = join(root, file);
    byName.set(name, parts);
  }
  if (misnamed.length > 0) {
    throw usageError(`files in ${root} look like revisions but are not named like one: ${misnamed.sort().join(', ')}`, {
      hint: 'Name them NNNN_slug.up.sql with NNNN_slug.down.sql (optional NNNN_slug.verify.sql), or NNNN_slug.ts/.js/.mjs, the slug of letters, digits, _ and - only (a dot or a space in it, as in 000056_upgrade_v6.0.up.sql, is not taken); move other files out of the folder.',
    });
  }
  const revisions: Revision[] = [];
  for (const [name, parts] of byName) {
    revisions.push(toRevision(name, parts));
    // reading and hashing is synchronous: let a connection opened beside it (status) make progress
    if (revisions.length % YIELD_EVERY === 0) await new Promise(setImmediate);
  }
  revisions.sort(compareRevisions);
  assertUniqueNumbers(revisions);
  return revisions;
}

function toRevision(name: string, parts: Parts): Revision {
  const number = REVISION_NAME.exec(name)![1]!;
  let kind: Revision['kind'];
  let files: RevisionFiles;
  if (parts.module) {
    if (parts.up || parts.down || parts.verify) {
      throw usageError(`revision ${name} has both a module and .sql files; keep one form`, { hint: `Keep ${basename(parts.module)} or the ${name}.*.sql files, and move the others out of the folder.` });
    }
    kind = 'module';
    files = { up: parts.module, down: undefined, verify: undefined };
  } else {
    if (!parts.up) throw usageError(`revision ${name} has no ${name}.up.sql`, { hint: 'Every SQL revision needs an .up.sql file.' });
    kind = 'sql';
    files = { up: parts.up, down: parts.down, verify: parts.verify };
  }
  const paths = [files.up, files.down, files.verify].filter((file): file is string => file !== undefined);
  return { name, number, kind, files, ...checksumFiles(paths) };
}

function compareRevisions(a: Revision, b: Revision): number {
  const byNumber = Number(a.number) - Number(b.number);
  return byNumber !== 0 ? byNumber : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function assertUniqueNumbers(revisions: Revision[]): void {
  for (let i = 1; i < revisions.length; i++) {
    const previous = revisions[i - 1]!;
    const current = revisions[i]!;
    if (Number(previous.number) === Number(current.number)) {
      throw usageError(`two revisions share the number ${current.number}: ${previous.name} and ${current.name}`, {
        hint: 'Renumber one of them; revisions are applied in number order.',
      });
    }
  }
}
