// N trivial revisions (one small CREATE TABLE each, a down that drops it), in
// each tool's own format: belay's NNNN_name.up.sql / .down.sql pairs (psql
// runs the same files), node-pg-migrate's one .sql with "-- Up Migration" /
// "-- Down Migration" (the file `node-pg-migrate create -j sql` makes) and
// dbmate's one .sql with "-- migrate:up" / "-- migrate:down".
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const name = (i) => `${String(i).padStart(4, '0')}_t${i}`;
const up = (i) => `CREATE TABLE t${i} (id bigint PRIMARY KEY, note text NOT NULL DEFAULT '', created_at timestamptz NOT NULL DEFAULT now());\n`;
const down = (i) => `DROP TABLE t${i};\n`;

/** Write the set under `dir`; returns the folders and the ordered file lists. */
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
  return {
    dir,
    count,
    paired,
    nodePgMigrate,
    dbmate,
    names,
    upFiles: names.map((n) => path.join(paired, `${n}.up.sql`)),
    downFiles: names.map((n) => path.join(paired, `${n}.down.sql`)),
  };
}
