// N trivial revisions (one small CREATE TABLE each, a down that drops it), in
// each tool's own format: belay's NNNN_name.up.sql / .down.sql pairs (psql
// runs the same files), node-pg-migrate's one .sql with "-- Up Migration" /
// "-- Down Migration" (the file `node-pg-migrate create -j sql` makes) and
// dbmate's one .sql with "-- migrate:up" / "-- migrate:down". Beside them, two
// scripts for one psql session (the floor a runner is measured against): each
// file in its own transaction with a tracking row, up, then down to the first.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const name = (i) => `${String(i).padStart(4, '0')}_t${i}`;
const up = (i) => `CREATE TABLE t${i} (id bigint PRIMARY KEY, note text NOT NULL DEFAULT '', created_at timestamptz NOT NULL DEFAULT now());\n`;
const down = (i) => `DROP TABLE t${i};\n`;

/** A psql meta-command argument in single quotes: a quote doubled, a backslash escaped. */
const psqlQuoted = (text) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
const sqlLiteral = (text) => `'${text.replaceAll("'", "''")}'`;

const TRACKING = 'CREATE TABLE IF NOT EXISTS psql_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());\n';

/** Per revision: BEGIN, the file (\i), the tracking row, COMMIT; what a runner does at the least. */
function sessionScript(steps) {
  return steps.map(({ file, tracking }) => `BEGIN;\n\\i ${psqlQuoted(file)}\n${tracking}\nCOMMIT;\n`).join('');
}

/** Write the set under `dir`; returns the folders, the ordered file lists and the psql session scripts. */
export async function writeRevisionSets(dir, count) {
  const paired = path.join(dir, 'paired');
  const nodePgMigrate = path.join(dir, 'node-pg-migrate');
  const dbmate = path.join(dir, 'dbmate');
  for (const folder of [paired, nodePgMigrate, dbmate]) await mkdir(folder, { recursive: true });
  const names = [];
  for (let i = 1; i <= count; i++) {
    const n = name(i);
    names.push(n);
    await writeFile(path.join(paired, `${n}.up.sql`), up(i));
    await writeFile(path.join(paired, `${n}.down.sql`), down(i));
    await writeFile(path.join(nodePgMigrate, `${n}.sql`), `-- Up Migration\n${up(i)}\n-- Down Migration\n${down(i)}`);
    await writeFile(path.join(dbmate, `${n}.sql`), `-- migrate:up\n${up(i)}\n-- migrate:down\n${down(i)}`);
  }
  const upFiles = names.map((n) => path.join(paired, `${n}.up.sql`));
  const downFiles = names.map((n) => path.join(paired, `${n}.down.sql`));
  const psqlSessionUp = path.join(dir, 'psql-session-up.sql');
  const psqlSessionDown = path.join(dir, 'psql-session-down.sql');
  await writeFile(psqlSessionUp, TRACKING + sessionScript(names.map((n, i) => ({ file: upFiles[i], tracking: `INSERT INTO psql_migrations (name) VALUES (${sqlLiteral(n)});` }))));
  // down to the first revision, newest first, as every runner is measured (N-1 downs)
  await writeFile(
    psqlSessionDown,
    sessionScript(
      names
        .map((n, i) => ({ file: downFiles[i], tracking: `DELETE FROM psql_migrations WHERE name = ${sqlLiteral(n)};` }))
        .slice(1)
        .reverse(),
    ),
  );
  return {
    dir,
    count,
    paired,
    nodePgMigrate,
    dbmate,
    names,
    upFiles,
    downFiles,
    psqlSessionUp,
    psqlSessionDown,
  };
}
