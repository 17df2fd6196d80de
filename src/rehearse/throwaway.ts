import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startTempCluster } from '../cluster/temp-cluster.js';
import { withDatabase, toPgConfig, type ConnectionParams } from '../db/connection.js';
import { createDatabase, dropDatabase } from '../db/databases.js';

export interface Throwaway {
  params: ConnectionParams;
  /** "ephemeral cluster in /tmp/…" or "database X on server Y". */
  where: string;
  /** Remove it: the cluster (stopped and deleted) or the database (dropped). Idempotent. */
  dispose(): Promise<void>;
}

const sessionOptions = { applicationName: 'belay rehearse', connectTimeoutMs: 10_000, statementTimeoutMs: 0, lockTimeoutMs: 10_000 };

/** A fresh cluster in a temp dir (initdb, socket only), removed afterwards. */
export async function ephemeralCluster(pgBin: string | undefined, path: string | undefined): Promise<Throwaway> {
  const cluster = await startTempCluster({ prefix: 'belay-rehearse-', superuser: 'postgres', tcp: false, pgBin, path });
  const { spec } = cluster;
  try {
    const admin = new pg.Client({ host: spec.socketDir, port: spec.port, user: spec.superuser, database: 'postgres' });
    await admin.connect();
    await admin.query('CREATE DATABASE rehearsal');
    await admin.end();
  } catch (error) {
    await cluster.remove();
    throw error;
  }
  return {
    params: { host: spec.socketDir, port: spec.port, user: spec.superuser, database: 'rehearsal', source: 'ephemeral cluster' },
    where: `an ephemeral cluster in ${cluster.root}`,
    dispose: cluster.remove,
  };
}

/** A new database on the given server (from a template when named), dropped afterwards. */
export async function throwawayDatabase(server: ConnectionParams, template: string | undefined): Promise<Throwaway> {
  const name = `belay_rehearse_${randomBytes(5).toString('hex')}`;
  const maintenance = async (work: (client: pg.Client) => Promise<void>): Promise<void> => {
    const client = new pg.Client(toPgConfig(withDatabase(server, 'postgres'), sessionOptions));
    client.on('error', () => {});
    await client.connect();
    try {
      await work(client);
    } finally {
      await client.end();
    }
  };
  await maintenance((client) => createDatabase(client, name, template ? { template } : {}));
  let disposed = false;
  return {
    params: { ...withDatabase(server, name), source: `throwaway database on ${server.host}` },
    where: `database ${name}${template ? ` (from template ${template})` : ''} on the connected server`,
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      await maintenance((client) => dropDatabase(client, name));
    },
  };
}
