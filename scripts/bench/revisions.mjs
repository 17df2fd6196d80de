// N trivial revisions (one small CREATE TABLE each, a down that drops it), or,
// in the `columns` shape, a first revision that makes a table many objects name
// (indexes, constraints, foreign keys of 20 other tables, views) and N-1 that
// each add a column to it (every other one with a default; a down that drops
// it), the commonest change of a real migration set, in
// each tool's own format: belay's NNNN_name.up.sql / .down.sql pairs (psql
// runs the same files), node-pg-migrate's one .sql with "-- Up Migration" /
// "-- Down Migration" (the file `node-pg-migrate create -j sql` makes) and
// dbmate's one .sql with "-- migrate:up" / "-- migrate:down". Beside them, two
// scripts for one psql session (the floor a runner is measured against): each
// file in its own transaction with a tracking row, up, then down to the first.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const SPOKES = Array.from({ length: 20 }, (_, i) => i + 1);
const VIEWS = [1, 2, 3, 4, 5];
const SHAPES = {
  tables: {
    name: (i) => `${String(i).padStart(4, '0')}_t${i}`,
    up: (i) => `CREATE TABLE t${i} (id bigint PRIMARY KEY, note text NOT NULL DEFAULT '', created_at timestamptz NOT NULL DEFAULT now());\n`,
    down: (i) => `DROP TABLE t${i};\n`,
  },
  columns: {
    // what the bench reports the set as: the counts of what the first revision makes below
    title: 'a column added to a table that 40 foreign keys (of 20 tables), 6 indexes and 5 views name (the first makes it)',
    name: (i) => `${String(i).padStart(4, '0')}_${i === 1 ? 'hub' : `c${i}`}`,
    up: (i) =>
      i === 1
        ? [
            'CREATE TABLE hub (id bigint PRIMARY KEY, code text UNIQUE, name text NOT NULL, at timestamptz DEFAULT now(), n integer CHECK (n >= 0));',
            ...[1, 2, 3, 4].map((k) => `CREATE INDEX hub_n${k} ON hub (name, id) WHERE n > ${k};`),
            ...SPOKES.map((k) => `CREATE TABLE spoke${k} (id bigint PRIMARY KEY, hub_id bigint REFERENCES hub (id), code text REFERENCES hub (code));`),
            ...VIEWS.map((k) => `CREATE VIEW hub_v${k} AS SELECT id, code, name FROM hub WHERE n > ${k};`),
          ].join('\n') + '\n'
        : `ALTER TABLE hub ADD COLUMN c${i} ${i % 2 === 0 ? 'integer DEFAULT 0' : 'text'};\n`,
    down: (i) => (i === 1 ? `DROP VIEW ${VIEWS.map((k) => `hub_v${k}`).join(', ')};\nDROP TABLE ${SPOKES.map((k) => `spoke${k}`).join(', ')}, hub;\n` : `ALTER TABLE hub DROP COLUMN c${i};\n`),
  },
};

/** A psql meta-command argument in single quotes: a quote doubled, a backslash escaped. */
const psqlQuoted = (text) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
const sqlLiteral = (text) => `'${text.replaceAll("'", "''")}'`;

const TRACKING = 'CREATE TABLE IF NOT EXISTS psql_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());\n';

/** Per revision: BEGIN, the file (\i), the tracking row, COMMIT; what a runner does at the least. */
function sessionScript(steps) {
  return steps.map(({ file, tracking }) => `BEGIN;\n\\i ${psqlQuoted(file)}\n${tracking}\nCOMMIT;\n`).join('');
}

/** The runner case's words for a shape other than the trivial tables. */
export const shapeTitle = (shape) => SHAPES[shape].title;

/** Write the set under `dir` (`shape`: tables or columns); returns the folders, the ordered file lists and the psql session scripts. */
export async function writeRevisionSets(dir, count, shape = 'tables') {
  const { name, up, down } = SHAPES[shape];
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
