// Where the compared programs are, or why one is missing.
import { access, constants, cp, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BELAY_CLI = path.join(ROOT, 'dist/cli/main.js');

async function executable(file) {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const exists = (file) => access(file).then(() => true, () => false);

async function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && (await executable(path.join(dir, name)))) return path.join(dir, name);
  }
  return null;
}

/**
 * The peers, each `{ path }` or `{ missing: reason }`. dbmate is run as its Go
 * binary: the npm package's `dbmate` command is a node shim around it that
 * would add a node start-up (~60 ms) to every dbmate process.
 */
export async function findTools() {
  const nodePgMigrate = path.join(ROOT, 'node_modules/node-pg-migrate/bin/node-pg-migrate.js');
  let dbmate;
  try {
    const { resolveBinary } = await import('dbmate');
    dbmate = resolveBinary();
  } catch {
    dbmate = null;
  }
  const sqitch = await onPath('sqitch');
  return {
    belay: (await exists(BELAY_CLI)) ? { path: BELAY_CLI } : { missing: 'dist/cli/main.js not built (npm run build)' },
    nodePgMigrate: (await exists(nodePgMigrate)) ? { path: nodePgMigrate } : { missing: 'node-pg-migrate not installed' },
    dbmate: dbmate && (await executable(dbmate)) ? { path: dbmate } : { missing: 'dbmate not installed' },
    sqitch: sqitch ? { path: sqitch } : { missing: 'sqitch not installed' },
  };
}

/**
 * A copy of dist/ for the run's belay processes, so that a rebuild during the
 * run (npm test rebuilds dist/) cannot hand them a mix of two builds. It lives
 * under node_modules/.cache so that its imports resolve to the project's
 * node_modules.
 */
export async function snapshotBelay() {
  const dir = path.join(ROOT, 'node_modules/.cache/belay-bench', String(process.pid));
  await cp(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
  return { cli: path.join(dir, 'dist/cli/main.js'), remove: () => rm(dir, { recursive: true, force: true }) };
}
